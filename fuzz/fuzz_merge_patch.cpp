// Two JSON documents (target, then patch, one after the other) -> merge_patch. Checks the result
// against RFC 7386 member by member, and that merging is idempotent, leaves the patch untouched
// and brings in no null members.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.h"
#include "model/merge_patch.h"

namespace {

namespace json = boost::json;
using possync::fuzz::show;

// RFC 7386, section 2, as a check of `result` rather than a second implementation: a non-object
// patch replaces the target; an object patch removes its null members, merges the others
// recursively (into an empty object when the target is not one) and keeps the target's other
// members as they were.
void check_merge(const json::value& target, const json::value& patch, const json::value& result) {
  const std::string context = show(target) + " + " + show(patch) + " = " + show(result);
  const auto* p = patch.if_object();
  if (p == nullptr) {
    FUZZ_CHECK(result == patch, context);
    return;
  }
  FUZZ_CHECK(result.is_object(), context);
  const json::object& r = result.get_object();
  static const json::object kEmpty;
  const json::object& t = target.is_object() ? target.get_object() : kEmpty;
  std::size_t expected_size = 0;
  for (const auto& member : t) {
    if (p->contains(member.key())) continue;
    ++expected_size;
    FUZZ_CHECK(r.contains(member.key()) && r.at(member.key()) == member.value(), context);
  }
  static const json::value kNull;
  for (const auto& member : *p) {
    if (member.value().is_null()) {
      FUZZ_CHECK(!r.contains(member.key()), context);
      continue;
    }
    ++expected_size;
    FUZZ_CHECK(r.contains(member.key()), context);
    const auto* before = t.if_contains(member.key());
    check_merge(before != nullptr ? *before : kNull, member.value(), r.at(member.key()));
  }
  FUZZ_CHECK(r.size() == expected_size, context);
}

// Whether an object member anywhere (outside arrays, whose elements are values, not members) is
// null.
bool has_null_member(const json::value& v) {
  const auto* o = v.if_object();
  if (o == nullptr) return false;
  for (const auto& member : *o) {
    if (member.value().is_null() || has_null_member(member.value())) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto docs =
      possync::fuzz::json_values(std::string_view(reinterpret_cast<const char*>(data), size), 2);
  if (docs.size() < 2) return 0;
  const json::value& target = docs[0];
  const json::value& patch = docs[1];

  json::value once = target;
  possync::merge_patch(once, patch);
  FUZZ_CHECK(patch == docs[1], show(patch));
  check_merge(target, patch, once);

  // Applying the same patch again changes nothing.
  json::value twice = once;
  possync::merge_patch(twice, patch);
  FUZZ_CHECK(twice == once, show(once) + " then " + show(twice));

  // Nulls in an object patch only remove: a target without null members gets none.
  if (patch.is_object() && !has_null_member(target)) {
    FUZZ_CHECK(!has_null_member(once), show(target) + " + " + show(patch) + " = " + show(once));
  }

  // The server's records are objects and its patches are objects: merging a record with a patch
  // always gives an object.
  if (target.is_object() && patch.is_object()) FUZZ_CHECK(once.is_object(), show(once));
  return 0;
}
