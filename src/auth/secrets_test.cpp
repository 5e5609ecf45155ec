#include "auth/secrets.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <string>
#include <thread>
#include <vector>

namespace possync {
namespace {

namespace json = boost::json;

// Cheap parameters for tests: libsodium's minimum cost.
const HashParams kFast{.passes = 1, .memory_bytes = 8 * 1024, .max_secrets = 8};

json::object parse(std::string_view text) {
  return json::parse(text).as_object();
}

// Every string value at any depth of `v`, keys included.
void collect_strings(const json::value& v, std::vector<std::string>& out) {
  if (const auto* s = v.if_string()) out.emplace_back(*s);
  if (const auto* o = v.if_object()) {
    for (const auto& m : *o) {
      out.emplace_back(m.key());
      collect_strings(m.value(), out);
    }
  }
  if (const auto* a = v.if_array()) {
    for (const auto& e : *a) collect_strings(e, out);
  }
}

TEST(SecretFields, NamesMatchCaseInsensitivelyAndExactly) {
  for (const char* name : {"pin", "PIN", "Pin", "password", "PassWord", "passcode", "PASSCODE"}) {
    EXPECT_TRUE(is_secret_field(name)) << name;
  }
  for (const char* name : {"", "pi", "pins", "pin_code", "new_password", "passcodes", "spin"}) {
    EXPECT_FALSE(is_secret_field(name)) << name;
  }
}

TEST(SecretHash, ShapeOfAcceptedHashes) {
  const std::string salt(22, 'A');
  const std::string hash(43, 'b');
  const auto phc = [&](std::string params, std::string s, std::string h) {
    return "$argon2id$v=19$" + params + "$" + s + "$" + h;
  };
  EXPECT_TRUE(is_argon2id_hash(phc("m=19456,t=2,p=1", salt, hash)));
  EXPECT_TRUE(is_argon2id_hash(phc("m=65536,t=2,p=1", salt, hash)));  // interactive: the max
  EXPECT_TRUE(is_argon2id_hash(phc("m=8,t=1,p=1", "+/09az" + salt, hash)));
  EXPECT_TRUE(is_argon2id_hash(phc("m=9216,t=4,p=4", salt, hash)));

  EXPECT_FALSE(is_argon2id_hash(""));
  EXPECT_FALSE(is_argon2id_hash("1234"));
  EXPECT_FALSE(is_argon2id_hash("$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + hash));
  EXPECT_FALSE(is_argon2id_hash("$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + hash));
  EXPECT_FALSE(is_argon2id_hash("$argon2id$v=19$m=19456,t=2,p=1$" + salt));  // no hash
  EXPECT_FALSE(is_argon2id_hash(phc("m=19456,t=2,p=1", salt, hash) + "$"));
  EXPECT_FALSE(is_argon2id_hash(phc("m=19456,t=2,p=1", salt, hash + "=")));  // padding
  EXPECT_FALSE(is_argon2id_hash(phc("m=19456,t=2,p=1", salt, hash + "!")));
  EXPECT_FALSE(is_argon2id_hash(phc("m=19456,t=2,p=1", salt, std::string(21, 'b'))));  // short
  EXPECT_FALSE(is_argon2id_hash(phc("m=19456,t=2,p=1", std::string(21, 'A'), hash)));
  EXPECT_FALSE(is_argon2id_hash(phc("m=19456,t=2,p=1", salt, std::string(45, 'b'))));  // 4k+1
  EXPECT_FALSE(is_argon2id_hash(phc("m=19456,t=2,p=1", salt, std::string(90, 'b'))));  // >= 128
  EXPECT_FALSE(is_argon2id_hash(phc("m=019456,t=2,p=1", salt, hash)));  // leading zero
  EXPECT_FALSE(is_argon2id_hash(phc("m=19456,t=0,p=1", salt, hash)));
  EXPECT_FALSE(is_argon2id_hash(phc("m=19456,t=2,p=0", salt, hash)));
  EXPECT_FALSE(is_argon2id_hash(phc("m=19456,t=2,p=17", salt, hash)));
  EXPECT_FALSE(is_argon2id_hash(phc("m=7,t=1,p=1", salt, hash)));
  EXPECT_FALSE(is_argon2id_hash(phc("t=2,m=19456,p=1", salt, hash)));
  EXPECT_FALSE(is_argon2id_hash(phc("m=19456,t=2", salt, hash)));
  // Too expensive to verify: more memory than 64 MiB, or more work than 64 MiB x 2.
  EXPECT_FALSE(is_argon2id_hash(phc("m=65537,t=1,p=1", salt, hash)));
  EXPECT_FALSE(is_argon2id_hash(phc("m=65536,t=3,p=1", salt, hash)));
  EXPECT_FALSE(is_argon2id_hash(phc("m=4194304,t=1,p=1", salt, hash)));
  EXPECT_FALSE(is_argon2id_hash(phc("m=19456,t=99999999999,p=1", salt, hash)));
}

TEST(SecretHash, HashVerifiesOnlyTheSameSecret) {
  auto phc = hash_secret("2468", kFast);
  ASSERT_TRUE(phc) << phc.error().message;
  EXPECT_TRUE(phc->starts_with("$argon2id$v=19$m=8,t=1,p=1$")) << *phc;
  EXPECT_TRUE(is_argon2id_hash(*phc)) << *phc;
  EXPECT_EQ(phc->find("2468"), std::string::npos);
  EXPECT_TRUE(verify_secret(*phc, "2468"));
  EXPECT_FALSE(verify_secret(*phc, "2469"));
  EXPECT_FALSE(verify_secret(*phc, ""));
  EXPECT_FALSE(verify_secret(*phc, "24680"));
  EXPECT_FALSE(verify_secret(*phc, std::string("2468\0", 5)));
  // A fresh salt every time.
  EXPECT_NE(*phc, hash_secret("2468", kFast).value());
  // Tampering with the stored hash.
  std::string tampered = *phc;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(verify_secret(tampered, "2468"));
  EXPECT_FALSE(verify_secret("2468", "2468"));  // plaintext is not a hash
  EXPECT_FALSE(verify_secret("", ""));
}

TEST(SecretHash, EmptyAndBinarySecretsHashToo) {
  const std::string binary("a\0b", 3);
  auto phc = hash_secret(binary, kFast);
  ASSERT_TRUE(phc);
  EXPECT_TRUE(verify_secret(*phc, binary));
  EXPECT_FALSE(verify_secret(*phc, "a"));
  auto empty = hash_secret("", kFast);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(verify_secret(*empty, ""));
  EXPECT_FALSE(verify_secret(*empty, " "));
}

TEST(SecretHash, DefaultParamsAreValidAndRecorded) {
  const HashParams defaults;
  EXPECT_TRUE(validate(defaults));
  auto phc = hash_secret("1234");  // default cost: one real hash
  ASSERT_TRUE(phc) << phc.error().message;
  EXPECT_TRUE(phc->starts_with("$argon2id$v=19$m=19456,t=2,p=1$")) << *phc;
  EXPECT_TRUE(verify_secret(*phc, "1234"));
}

TEST(SecretHash, ParamsOutsideTheAcceptedRangeAreRefused) {
  EXPECT_TRUE(validate({.passes = 2, .memory_bytes = kMaxHashMemoryBytes}));
  EXPECT_FALSE(validate({.passes = 0}));
  EXPECT_FALSE(validate({.passes = 1, .memory_bytes = 8191}));
  EXPECT_FALSE(validate({.passes = 1, .memory_bytes = kMaxHashMemoryBytes + 1024}));
  EXPECT_FALSE(validate({.passes = 3, .memory_bytes = kMaxHashMemoryBytes}));
  EXPECT_FALSE(validate({.passes = ~std::uint64_t{0}, .memory_bytes = 8192}));
  EXPECT_FALSE(validate({.passes = 1, .memory_bytes = 8192, .max_secrets = 0}));
  auto refused = hash_secret("1234", {.passes = 0});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::kInvalidField);
  json::object data = parse(R"({"pin":"1234"})");
  EXPECT_FALSE(hash_secrets(data, {.passes = 0}));
  EXPECT_EQ(data, parse(R"({"pin":"1234"})"));
}

TEST(HashSecrets, ReplacesEverySecretAtAnyDepthAndLeavesNoPlaintext) {
  json::object data = parse(R"({
    "name":"Anna","PIN":"4711","role":"manager",
    "settings":{"Password":"hunter2","theme":"dark","deep":{"passcode":"s3cret"}},
    "devices":[{"pin":"9999"},{"label":"pin"},[{"password":"in-array"}]],
    "note":"pin password passcode"})");
  ASSERT_TRUE(contains_secrets(data));
  ASSERT_TRUE(hash_secrets(data, kFast));
  EXPECT_FALSE(contains_secrets(data));

  const std::string text = json::serialize(data);
  for (const char* plaintext : {"4711", "hunter2", "s3cret", "9999", "in-array"}) {
    EXPECT_EQ(text.find(plaintext), std::string::npos) << plaintext << " in " << text;
  }
  EXPECT_TRUE(verify_secret(data.at("PIN").as_string(), "4711"));
  EXPECT_TRUE(verify_secret(data.at("settings").at("Password").as_string(), "hunter2"));
  EXPECT_TRUE(verify_secret(data.at("settings").at("deep").at("passcode").as_string(), "s3cret"));
  EXPECT_TRUE(verify_secret(data.at("devices").at(0).at("pin").as_string(), "9999"));
  EXPECT_TRUE(verify_secret(data.at("devices").at(2).at(0).at("password").as_string(), "in-array"));
  // Everything else is untouched.
  EXPECT_EQ(data.at("name"), "Anna");
  EXPECT_EQ(data.at("settings").at("theme"), "dark");
  EXPECT_EQ(data.at("devices").at(1), parse(R"({"label":"pin"})"));
  EXPECT_EQ(data.at("note"), "pin password passcode");
}

TEST(HashSecrets, IsIdempotent) {
  json::object data = parse(R"({"pin":"1234","profile":{"password":"pw"}})");
  ASSERT_TRUE(hash_secrets(data, kFast));
  const json::object once = data;
  // A device re-sending the record it received: nothing is hashed twice.
  EXPECT_FALSE(contains_secrets(data));
  ASSERT_TRUE(hash_secrets(data, kFast));
  EXPECT_EQ(data, once);
  EXPECT_TRUE(verify_secret(data.at("pin").as_string(), "1234"));
  // Also with other (accepted) parameters than the ones the hash was made with.
  ASSERT_TRUE(hash_secrets(data, {.passes = 2, .memory_bytes = 16 * 1024}));
  EXPECT_EQ(data, once);
}

TEST(HashSecrets, NumericPinsHashTheirDecimalText) {
  json::object data = parse(R"({"pin":4711,"a":{"pin":-12},"b":{"pin":1234.0},
                                "c":{"pin":18446744073709551615}})");
  ASSERT_TRUE(hash_secrets(data, kFast));
  EXPECT_TRUE(verify_secret(data.at("pin").as_string(), "4711"));
  EXPECT_TRUE(verify_secret(data.at("a").at("pin").as_string(), "-12"));
  EXPECT_TRUE(verify_secret(data.at("b").at("pin").as_string(), "1234"));
  EXPECT_TRUE(verify_secret(data.at("c").at("pin").as_string(), "18446744073709551615"));
  EXPECT_FALSE(verify_secret(data.at("b").at("pin").as_string(), "1234.0"));
}

TEST(HashSecrets, NullMeansClearAndIsKept) {
  json::object data = parse(R"({"pin":null,"name":"x"})");
  EXPECT_FALSE(contains_secrets(data));
  ASSERT_TRUE(hash_secrets(data, kFast));
  EXPECT_EQ(data, parse(R"({"pin":null,"name":"x"})"));
}

TEST(HashSecrets, ValuesThatCannotBeSecretsAreRejectedWithoutHashingAnything) {
  for (const char* bad :
       {"true", R"({"x":"1"})", R"(["1234"])", "12.5", "1e300",
        R"("$argon2id$v=19$m=1,t=1,p=1$x$y")",
        R"("$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA")"}) {
    // A plaintext secret comes first: it must not be hashed either.
    json::object data = parse(R"({"password":"plain","nested":{"pin":)" + std::string(bad) + "}}");
    const json::object before = data;
    EXPECT_TRUE(contains_secrets(data)) << bad;
    auto result = hash_secrets(data, kFast);
    ASSERT_FALSE(result) << bad;
    EXPECT_EQ(result.error().code, errc::kInvalidField) << bad;
    EXPECT_NE(result.error().message.find("'pin'"), std::string::npos) << result.error().message;
    EXPECT_EQ(data, before) << bad;
  }
}

TEST(HashSecrets, ErrorMessagesNeverContainTheSecret) {
  json::object data = parse(R"({"pin":"1234","password":["hunter2"]})");
  auto result = hash_secrets(data, kFast);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message.find("hunter2"), std::string::npos);
  EXPECT_EQ(result.error().message.find("1234"), std::string::npos);
  EXPECT_NE(result.error().message.find("password"), std::string::npos) << result.error().message;
}

TEST(HashSecrets, TooManySecretsAreRejectedBeforeHashing) {
  json::object data;
  json::array staff;
  for (int i = 0; i < 3; ++i) staff.push_back(json::object{{"pin", std::to_string(i)}});
  data["staff"] = std::move(staff);
  const json::object before = data;
  HashParams two = kFast;
  two.max_secrets = 2;
  auto result = hash_secrets(data, two);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, errc::kInvalidField);
  EXPECT_EQ(data, before);
  // Hashes and nulls do not count.
  data["staff"].as_array()[2].as_object()["pin"] = nullptr;
  EXPECT_TRUE(hash_secrets(data, two));
  data["staff"].as_array()[2].as_object()["pin"] = "7";
  EXPECT_TRUE(hash_secrets(data, two));  // two are hashes now
  EXPECT_FALSE(contains_secrets(data));
}

TEST(HashSecrets, ObjectsWithoutSecretsAreUnchanged) {
  for (const char* text : {"{}", R"({"name":"x","pin_code":"1234","pins":["1"]})",
                           R"({"a":{"b":[{"c":"password"}]}})"}) {
    json::object data = parse(text);
    EXPECT_FALSE(contains_secrets(data)) << text;
    ASSERT_TRUE(hash_secrets(data, kFast));
    EXPECT_EQ(data, parse(text));
  }
}

TEST(HashSecrets, IsSafeFromManyThreads) {
  std::vector<std::thread> threads;
  std::vector<json::object> results(8);
  for (std::size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&results, i] {
      results[i] = json::object{{"pin", std::to_string(1000 + i)}};
      if (!hash_secrets(results[i], kFast)) results[i] = {};
    });
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i].contains("pin")) << i;
    EXPECT_TRUE(verify_secret(results[i].at("pin").as_string(), std::to_string(1000 + i)));
    EXPECT_FALSE(verify_secret(results[i].at("pin").as_string(), std::to_string(1001 + i)));
  }
}

TEST(RedactSecrets, ReplacesEverySecretValueInACopy) {
  const json::object data = parse(R"({"pin":"4711","name":"Anna","PASSWORD":null,
    "a":{"passcode":1234,"list":[{"pin":{"nested":"leak"}}]},"pin_code":"kept"})");
  const json::object redacted = redact_secrets(data);
  EXPECT_EQ(redacted, parse(R"({"pin":"[redacted]","name":"Anna","PASSWORD":"[redacted]",
    "a":{"passcode":"[redacted]","list":[{"pin":"[redacted]"}]},"pin_code":"kept"})"));
  EXPECT_EQ(data.at("pin"), "4711");  // the original is untouched

  std::vector<std::string> strings;
  collect_strings(redacted, strings);
  for (const auto& s : strings) {
    for (const char* secret : {"4711", "1234", "leak"})
      EXPECT_EQ(s.find(secret), std::string::npos);
  }
}

TEST(RedactSecrets, RedactsHashesToo) {
  json::object data = parse(R"({"pin":"4711"})");
  ASSERT_TRUE(hash_secrets(data, kFast));
  EXPECT_EQ(redact_secrets(data), parse(R"({"pin":"[redacted]"})"));
}

}  // namespace
}  // namespace possync
