#include "gateway/server/mailbox.h"

#include <event2/event.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace sluice {

Mailbox::Mailbox(event_base* base) {
  fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ev_ = event_new(base, fd_, EV_READ | EV_PERSIST, &onReadable, this);
  event_add(ev_, nullptr);
}

Mailbox::~Mailbox() {
  event_free(ev_);
  if (fd_ >= 0) ::close(fd_);
}

void Mailbox::post(std::function<void()> fn) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mu_);
    was_empty = queue_.empty();
    queue_.push_back(std::move(fn));
  }
  // The reader takes the whole queue at once: a queue that was not empty already has a
  // wake-up on its way.
  if (!was_empty) return;
  uint64_t one = 1;
  ssize_t ignored = ::write(fd_, &one, sizeof one);
  (void)ignored;
}

void Mailbox::onReadable(int fd, short, void* arg) {
  auto* self = static_cast<Mailbox*>(arg);
  uint64_t value;
  ssize_t ignored = ::read(fd, &value, sizeof value);
  (void)ignored;
  std::vector<std::function<void()>> queue;
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    queue.swap(self->queue_);
  }
  for (auto& fn : queue) fn();
}

}  // namespace sluice
