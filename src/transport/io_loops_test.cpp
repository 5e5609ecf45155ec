#include "transport/io_loops.h"

#include <gtest/gtest.h>

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace possync {
namespace {

// One loop run on a thread of its own; records what its tasks say, in the order they run.
class IoLoopsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    runner_ = std::thread([this] { loops_.run(); });
  }
  void TearDown() override {
    loops_.stop();
    runner_.join();
  }

  void record(std::string what) {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(what));
    cv_.notify_all();
  }
  Loops::Task recorder(std::string what) {
    return [this, what] { record(what); };
  }
  // Waits until `count` events were recorded (or a generous time passed) and returns them.
  std::vector<std::string> events(std::size_t count) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return events_.size() >= count; });
    return events_;
  }
  // Runs `body` on the loop's thread, as a task posted from this (another) thread.
  void on_loop(std::function<void()> body) { loops_.post(0, {std::move(body)}); }
  // Posts `task` from a thread that is not the loop's, and waits until it was handed over.
  void post_from_other_thread(Loops::Task task) {
    std::thread([&] { loops_.post(0, {std::move(task)}); }).join();
  }

  IoLoops loops_{1};
  std::thread runner_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> events_;
};

TEST_F(IoLoopsTest, OwnPostRunsAfterTheCurrentTaskAndBeforeLaterPostsOfOtherThreads) {
  on_loop([this] {
    EXPECT_EQ(loops_.current(), std::optional<std::size_t>(0));
    loops_.post(0, {recorder("own 1"), recorder("own 2")});
    post_from_other_thread(recorder("other"));
    record("current");
  });
  EXPECT_EQ(events(4), (std::vector<std::string>{"current", "own 1", "own 2", "other"}));
}

TEST_F(IoLoopsTest, OwnPostWaitsBehindWhatOtherThreadsPostedBeforeIt) {
  on_loop([this] {
    post_from_other_thread(recorder("other"));
    loops_.post(0, {recorder("own")});
    record("current");
  });
  EXPECT_EQ(events(3), (std::vector<std::string>{"current", "other", "own"}));
}

TEST_F(IoLoopsTest, AnOwnPostFromADeferredTaskRunsInTheSameTurn) {
  on_loop([this] {
    loops_.defer(0, [this] {
      record("deferred");
      loops_.post(0, {recorder("posted by deferred")});
    });
    record("current");
  });
  EXPECT_EQ(events(3), (std::vector<std::string>{"current", "deferred", "posted by deferred"}));
}

class RecordingWriter final : public IoLoops::Writer {
 public:
  explicit RecordingWriter(std::function<void()> on_write) : on_write_(std::move(on_write)) {}
  void write_now() override { on_write_(); }

 private:
  std::function<void()> on_write_;
};

TEST_F(IoLoopsTest, WritesRunAfterEveryEndOfTurnTaskIncludingThoseTheyAdd) {
  on_loop([this] {
    auto writer = std::make_shared<RecordingWriter>([this] {
      record("write");
      // A write may defer more (a catch-up going on): it still runs in this turn.
      loops_.defer(0, recorder("deferred by the write"));
    });
    loops_.write_at_turn_end(0, writer);
    loops_.defer(0, [this] {
      record("task 1");
      loops_.defer(0, recorder("task 2, added by task 1"));
      loops_.post(0, {recorder("own post of task 1")});
    });
    record("current");
  });
  EXPECT_EQ(events(6),
            (std::vector<std::string>{"current", "task 1", "task 2, added by task 1",
                                      "own post of task 1", "write", "deferred by the write"}));
}

TEST_F(IoLoopsTest, PostsFromAnotherThreadKeepTheirOrder) {
  for (int i = 0; i < 100; ++i) loops_.post(0, {recorder(std::to_string(i))});
  const auto got = events(100);
  ASSERT_EQ(got.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[i], std::to_string(i));
}

TEST_F(IoLoopsTest, AnEmptyPostFromTheLoopHoldsNothingBack) {
  on_loop([this] {
    loops_.post(0, {});
    record("current");
  });
  // Had the empty post held the inbox, this would wait for an end-of-turn run that never comes.
  post_from_other_thread(recorder("other"));
  EXPECT_EQ(events(2), (std::vector<std::string>{"current", "other"}));
}

TEST_F(IoLoopsTest, AnEmptyPostFromAnotherThreadLetsNothingOvertake) {
  on_loop([this] {
    // Nothing: no handler of its own, which could run other threads' later posts early.
    std::thread([this] { loops_.post(0, {}); }).join();
    loops_.post(0, {recorder("own")});
    post_from_other_thread(recorder("other, after own"));
    record("current");
  });
  EXPECT_EQ(events(3), (std::vector<std::string>{"current", "own", "other, after own"}));
}

TEST_F(IoLoopsTest, AThreadRunningAnotherIoLoopsPostsAsAStranger) {
  IoLoops other{1};
  std::thread runner([&] { other.run(); });
  Loops::Task on_this_loop = [this] {
    record(loops_.current() == 0 ? "ran on the loop" : "ran elsewhere");
  };
  // Runs on loop 0 of `other`, not of loops_: its post to loops_ is another thread's.
  Loops::Task on_other_loop = [&] {
    record(loops_.current() ? "current set" : "current unset");
    loops_.post(0, {on_this_loop});
  };
  other.post(0, {on_other_loop});
  EXPECT_EQ(events(2), (std::vector<std::string>{"current unset", "ran on the loop"}));
  other.stop();
  runner.join();
}

TEST(IoLoopsDestruction, DropsWorkThatNeverRanBeforeAnyLoopGoes) {
  // A task waiting on loop 1 holds a timer of loop 0 (as a delivery holds connections of other
  // loops): it must be destroyed while loop 0's io_context still exists (ASan sees it otherwise).
  bool task_gone = false;
  {
    IoLoops loops{2};
    auto timer = std::make_shared<boost::asio::steady_timer>(loops.context(0));
    struct Flag {
      explicit Flag(bool& gone) : gone(gone) {}
      ~Flag() { gone = true; }
      bool& gone;
    };
    auto flag = std::make_shared<Flag>(task_gone);
    loops.post(1, {[timer, flag] { ADD_FAILURE() << "a task of a loop that never ran ran"; }});
    timer.reset();
    flag.reset();
    EXPECT_FALSE(task_gone);
  }
  EXPECT_TRUE(task_gone);
}

}  // namespace
}  // namespace possync
