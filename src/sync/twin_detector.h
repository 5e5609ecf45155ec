// TwinDetector: recognises the data_change twin of a typed update on one connection.
//
// Today's app sends each change twice over its WebSocket: the typed update (no change_id), then at
// once a `data_change` for the same record and action whose `data` is {"id": <record id>, ...the
// same fields}, with a client change_id (and later POSTs that data_change again). The rule:
//
//   A data_change is the twin of the typed update before it on the same connection when it is the
//   very next change-bearing message, arrives within the twin window, and has the same data type,
//   action, record id, and data (ignoring the top-level "id" member).
//
// A twin is not a new change: its change_id becomes an alias of the typed update's change, so the
// later POST of the same change_id is recognised as a duplicate too.
//
// Thread-safety: none; owned by one session and used on its strand.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "model/change.h"

namespace possync {

class TwinDetector {
 public:
  using Clock = std::chrono::steady_clock;
  explicit TwinDetector(std::chrono::milliseconds window) : window_(window) {}

  // Remembers a typed update (with its server-assigned change id) as a candidate for pairing.
  void remember(const Change& typed, Clock::time_point now);

  // Returns the change id of the typed update `data_change` is the twin of, or an empty string.
  // Either way the candidate is forgotten: only the next change can be a twin.
  std::string match(const Change& data_change, Clock::time_point now);
  // Whether match() would find `data_change` a twin, without consuming the candidate.
  bool would_match(const Change& data_change, Clock::time_point now) const;

  void forget() { candidate_.reset(); }

  // True if both changes carry the same data type, action and data (ignoring a top-level "id");
  // the record ids are compared too unless `compare_record_ids` is false.
  static bool same_content(const Change& a, const Change& b, bool compare_record_ids);

 private:
  struct Candidate {
    Change change;
    Clock::time_point at;
  };
  std::chrono::milliseconds window_;
  // On the heap: a connection between changes (most of them, most of the time) holds no copy.
  std::unique_ptr<Candidate> candidate_;
};

}  // namespace possync
