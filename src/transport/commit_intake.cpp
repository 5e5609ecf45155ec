#include "transport/commit_intake.h"

namespace possync {

void CommitIntake::submit(std::size_t loop, ChangeRequest request,
                          CommitPipeline::Completion done) {
  auto& pending = pending_[loop];
  if (pending.empty()) loops_.defer(loop, [this, loop] { flush(loop); });
  pending.push_back({std::move(request), std::move(done), loop});
}

void CommitIntake::flush(std::size_t loop) {
  auto batch = std::exchange(pending_[loop], {});
  if (pipeline_.submit(batch)) return;
  for (auto& s : batch) {
    Outcome refused;
    refused.change_id = s.request.change.change_id;
    refused.error = {errc::kShuttingDown, "the server is shutting down; retry on reconnect"};
    if (s.done) s.done(refused);
  }
}

}  // namespace possync
