#include "transport/commit_intake.h"

namespace possync {

void CommitIntake::submit(std::size_t loop, ChangeRequest request,
                          CommitPipeline::Completion done) {
  auto& pending = pending_[loop];
  if (pending.empty()) loops_.defer(loop, [this, loop] { flush(loop); });
  if (backpressure_) backpressure_->changes_queued(1);
  pending.push_back({std::move(request), std::move(done), loop});
}

void CommitIntake::flush(std::size_t loop) {
  auto batch = std::exchange(pending_[loop], {});
  // Counted since submit(); the pipeline takes the count over (and drops it if it refuses them).
  if (pipeline_.submit(batch, backpressure_ != nullptr)) return;
  for (auto& s : batch) {
    Outcome refused;
    refused.change_id = s.request.change.change_id;
    refused.error = {errc::kShuttingDown, "the server is shutting down; retry on reconnect"};
    if (s.done) s.done(refused);
  }
}

}  // namespace possync
