#include "sync/catch_up.h"

#include <algorithm>

namespace possync {

void CatchUp::start(std::uint64_t since) {
  // Changes already delivered live on this connection (a contiguous run of seqs, as publishing
  // is in seq order) are not repeated.
  skip_from_ = first_live_;
  skip_to_ = first_live_ == 0 ? 0 : last_sent_;
  catching_up_ = true;
  cursor_ = since;
  first_page_ = true;
}

std::optional<Error> CatchUp::pump(Store& store, std::string_view restaurant, std::size_t page_size,
                                   Room& room, Sink& sink) {
  while (catching_up_ && sink.has_room()) {
    auto page = store.read_log(restaurant, cursor_, page_size);
    if (!page) return page.error();
    const LogHead& head = page->head;
    const bool ahead = first_page_ && cursor_ > head.seq;
    first_page_ = false;
    // Every page: the log may have been pruned past the cursor while the catch-up waited for room
    // in the queue, and reading on would skip what was pruned.
    if (cursor_ < head.pruned_seq || ahead) {
      sink.reset_required(head.seq, ahead
                                        ? "since is ahead of the server's log; reload the snapshot"
                                        : "history after since was pruned; reload the snapshot");
      cursor_ = head.seq;
      last_sent_ = std::max(last_sent_, cursor_);
      continue;
    }
    bool stopped_early = false;
    for (const auto& entry : page->entries) {
      if (!sink.has_room()) {
        stopped_early = true;
        break;
      }
      cursor_ = entry.seq;
      if (entry.seq >= skip_from_ && entry.seq <= skip_to_) continue;
      sink.entry(entry);
    }
    last_sent_ = std::max(last_sent_, cursor_);
    if (stopped_early || page->entries.size() >= page_size) continue;
    if (room.go_live(cursor_, [this] { catching_up_ = false; })) {
      skip_from_ = skip_to_ = 0;
      sink.caught_up(cursor_);
    }
  }
  return std::nullopt;
}

}  // namespace possync
