#include "model/merge_patch.h"

namespace possync {

void merge_patch(boost::json::value& target, const boost::json::value& patch) {
  const auto* patch_object = patch.if_object();
  if (patch_object == nullptr) {
    target = patch;
    return;
  }
  if (!target.is_object()) target = boost::json::object{};
  auto& target_object = target.get_object();
  for (const auto& member : *patch_object) {
    if (member.value().is_null()) {
      target_object.erase(member.key());
    } else {
      merge_patch(target_object[member.key()], member.value());
    }
  }
}

}  // namespace possync
