#include "sync/twin_detector.h"

namespace possync {
namespace {

bool equal_ignoring_id(const boost::json::object& a, const boost::json::object& b) {
  std::size_t a_size = a.size() - (a.contains("id") ? 1 : 0);
  std::size_t b_size = b.size() - (b.contains("id") ? 1 : 0);
  if (a_size != b_size) return false;
  for (const auto& member : a) {
    if (member.key() == "id") continue;
    const auto* other = b.if_contains(member.key());
    if (other == nullptr || *other != member.value()) return false;
  }
  return true;
}

}  // namespace

void TwinDetector::remember(const Change& typed, Clock::time_point now) {
  candidate_ = std::make_unique<Candidate>(Candidate{typed, now});
}

bool TwinDetector::would_match(const Change& data_change, Clock::time_point now) const {
  return candidate_ && now - candidate_->at <= window_ &&
         same_content(candidate_->change, data_change, true);
}

std::string TwinDetector::match(const Change& data_change, Clock::time_point now) {
  std::string twin_of = would_match(data_change, now) ? candidate_->change.change_id : "";
  candidate_.reset();
  return twin_of;
}

bool TwinDetector::same_content(const Change& a, const Change& b, bool compare_record_ids) {
  return a.data_type == b.data_type && a.action == b.action &&
         (!compare_record_ids || a.record_id == b.record_id) && equal_ignoring_id(a.data, b.data);
}

}  // namespace possync
