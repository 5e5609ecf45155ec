#include "model/merge_patch.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <string>

namespace possync {
namespace {

namespace json = boost::json;

json::value merged(std::string_view target, std::string_view patch) {
  json::value t = json::parse(target);
  merge_patch(t, json::parse(patch));
  return t;
}

// ---- RFC 7386, Appendix A: every example, one row each ----

struct Example {
  const char* name;
  const char* original;
  const char* patch;
  const char* result;
};

void PrintTo(const Example& ex, std::ostream* os) {
  *os << ex.name;
}

class Rfc7386AppendixA : public testing::TestWithParam<Example> {};

TEST_P(Rfc7386AppendixA, ProducesTheDocumentedResult) {
  const Example& ex = GetParam();
  const json::value result = merged(ex.original, ex.patch);
  EXPECT_EQ(result, json::parse(ex.result))
      << "original " << ex.original << " patch " << ex.patch << " gave " << json::serialize(result);
}

INSTANTIATE_TEST_SUITE_P(
    AllExamples, Rfc7386AppendixA,
    testing::Values(
        Example{"ReplaceMember", R"({"a":"b"})", R"({"a":"c"})", R"({"a":"c"})"},
        Example{"AddMember", R"({"a":"b"})", R"({"b":"c"})", R"({"a":"b","b":"c"})"},
        Example{"RemoveOnlyMember", R"({"a":"b"})", R"({"a":null})", R"({})"},
        Example{"RemoveOneMember", R"({"a":"b","b":"c"})", R"({"a":null})", R"({"b":"c"})"},
        Example{"ArrayReplacedByString", R"({"a":["b"]})", R"({"a":"c"})", R"({"a":"c"})"},
        Example{"StringReplacedByArray", R"({"a":"c"})", R"({"a":["b"]})", R"({"a":["b"]})"},
        Example{"NestedMergeAndRemove", R"({"a":{"b":"c"}})", R"({"a":{"b":"d","c":null}})",
                R"({"a":{"b":"d"}})"},
        Example{"ArrayOfObjectsReplaced", R"({"a":[{"b":"c"}]})", R"({"a":[1]})", R"({"a":[1]})"},
        Example{"ArrayReplacesArray", R"(["a","b"])", R"(["c","d"])", R"(["c","d"])"},
        Example{"ArrayReplacesObject", R"({"a":"b"})", R"(["c"])", R"(["c"])"},
        Example{"NullReplacesObject", R"({"a":"foo"})", R"(null)", R"(null)"},
        Example{"StringReplacesObject", R"({"a":"foo"})", R"("bar")", R"("bar")"},
        Example{"ExistingNullKept", R"({"e":null})", R"({"a":1})", R"({"e":null,"a":1})"},
        Example{"ObjectPatchOnArray", R"([1,2])", R"({"a":"b","c":null})", R"({"a":"b"})"},
        Example{"NullInsideNewNestedObject", R"({})", R"({"a":{"bb":{"ccc":null}}})",
                R"({"a":{"bb":{}}})"}),
    [](const testing::TestParamInfo<Example>& info) { return std::string(info.param.name); });

// ---- RFC 7386, section 3: the worked example ----

TEST(MergePatch, Rfc7386SectionThreeExample) {
  const json::value result = merged(
      R"({"title":"Goodbye!","author":{"givenName":"John","familyName":"Doe"},
          "tags":["example","sample"],"content":"This will be unchanged"})",
      R"({"title":"Hello!","phoneNumber":"+01-123-456-7890",
          "author":{"familyName":null},"tags":["example"]})");
  EXPECT_EQ(result, json::parse(R"({"title":"Hello!","author":{"givenName":"John"},
      "tags":["example"],"content":"This will be unchanged","phoneNumber":"+01-123-456-7890"})"));
}

// ---- the rules, one at a time ----

TEST(MergePatch, NestedObjectsMergeRecursivelyKeepingUntouchedMembers) {
  const json::value result =
      merged(R"({"order":{"status":"open","totals":{"net":10,"tax":2},"items":3},"x":1})",
             R"({"order":{"totals":{"tax":3},"status":"paid"}})");
  EXPECT_EQ(result, json::parse(R"({"order":{"status":"paid","totals":{"net":10,"tax":3},
      "items":3},"x":1})"));
}

TEST(MergePatch, NullRemovesMemberAtAnyDepth) {
  EXPECT_EQ(merged(R"({"a":1,"b":{"c":2,"d":3}})", R"({"a":null,"b":{"d":null}})"),
            json::parse(R"({"b":{"c":2}})"));
}

TEST(MergePatch, NullForAbsentMemberIsNoOp) {
  EXPECT_EQ(merged(R"({"a":1})", R"({"zzz":null})"), json::parse(R"({"a":1})"));
}

TEST(MergePatch, NullRemovesWholeSubtree) {
  EXPECT_EQ(merged(R"({"a":{"b":{"c":1}},"k":true})", R"({"a":null})"),
            json::parse(R"({"k":true})"));
}

TEST(MergePatch, ArraysAreReplacedNotMerged) {
  EXPECT_EQ(merged(R"({"items":[1,2,3]})", R"({"items":[4]})"), json::parse(R"({"items":[4]})"));
  EXPECT_EQ(merged(R"({"items":[{"a":1},{"b":2}]})", R"({"items":[{"c":3}]})"),
            json::parse(R"({"items":[{"c":3}]})"));
  EXPECT_EQ(merged(R"({"items":[1]})", R"({"items":[]})"), json::parse(R"({"items":[]})"));
}

TEST(MergePatch, NullsInsideArraysAreKeptLiterally) {
  EXPECT_EQ(merged(R"({})", R"({"a":[null,{"b":null}]})"),
            json::parse(R"({"a":[null,{"b":null}]})"));
}

TEST(MergePatch, NonObjectPatchReplacesTarget) {
  EXPECT_EQ(merged(R"({"a":1})", "42"), json::value(42));
  EXPECT_EQ(merged(R"({"a":1})", "true"), json::value(true));
  EXPECT_EQ(merged(R"({"a":1})", R"("s")"), json::value("s"));
  EXPECT_EQ(merged(R"([1])", "[]"), json::parse("[]"));
  EXPECT_EQ(merged("null", "1.5"), json::value(1.5));
}

TEST(MergePatch, ObjectPatchOnNonObjectTargetStartsFromEmptyObject) {
  EXPECT_EQ(merged("7", R"({"a":1})"), json::parse(R"({"a":1})"));
  EXPECT_EQ(merged("null", R"({"a":1,"b":null})"), json::parse(R"({"a":1})"));
  EXPECT_EQ(merged(R"({"a":"scalar"})", R"({"a":{"b":1}})"), json::parse(R"({"a":{"b":1}})"));
}

TEST(MergePatch, EmptyObjectPatchChangesNothing) {
  const char* doc = R"({"a":{"b":[1,2]},"c":null})";
  EXPECT_EQ(merged(doc, "{}"), json::parse(doc));
}

TEST(MergePatch, PatchIsNotModified) {
  json::value target = json::parse(R"({"a":{"b":1}})");
  const json::value patch = json::parse(R"({"a":{"c":2,"b":null},"d":[1]})");
  const json::value copy = patch;
  merge_patch(target, patch);
  EXPECT_EQ(patch, copy);
}

}  // namespace
}  // namespace possync
