// CommitIntake: the changes the connections of one loop submit during a turn of that loop, handed
// to the commit pipeline together at the end of the turn: one hand-over (one wake-up of the
// writer) for all of them instead of one per change. Order is kept: per loop, changes reach the
// pipeline in the order they were submitted.
//
// Thread-safety: submit() only on the thread of the loop it names.
#pragma once

#include <vector>

#include "sync/commit_pipeline.h"
#include "transport/io_loops.h"

namespace possync {

class CommitIntake {
 public:
  // `backpressure` (optional) counts a change from its submit() on, as the pipeline does once it
  // holds it, so that the gate closes within the turn that fills it.
  CommitIntake(CommitPipeline& pipeline, IoLoops& loops, Backpressure* backpressure = nullptr)
      : pipeline_(pipeline), loops_(loops), backpressure_(backpressure), pending_(loops.count()) {}

  // Queues `request`; `done` runs on `loop` with its outcome (a `shutting_down` rejection if the
  // pipeline no longer takes changes).
  void submit(std::size_t loop, ChangeRequest request, CommitPipeline::Completion done);

 private:
  void flush(std::size_t loop);

  CommitPipeline& pipeline_;
  IoLoops& loops_;
  Backpressure* backpressure_;
  std::vector<std::vector<CommitPipeline::Submission>> pending_;  // per loop
};

}  // namespace possync
