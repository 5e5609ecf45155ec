// JSON Merge Patch (RFC 7386): the rule by which a change's `data` updates a record.
#pragma once

#include <boost/json/value.hpp>

namespace possync {

// Applies `patch` to `target` in place: object members are merged recursively, a null member
// removes the key, and any non-object patch replaces the target.
void merge_patch(boost::json::value& target, const boost::json::value& patch);

}  // namespace possync
