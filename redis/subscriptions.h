// redis/subscriptions.h: the channels a client wants, and what it told Redis about each on the current connection.
// Rule: "subscribed" is reported only for the reply to the latest SUBSCRIBE of a wanted channel, with nothing outstanding.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace roomcast::redis {

// Redis answers SUBSCRIBE/UNSUBSCRIBE of one connection in order, and applies them in order, so
// after subscribe/unsubscribe/subscribe the first "subscribe" reply is not the one that counts:
// each channel keeps a count of commands not yet answered, and only the reply that brings it to
// zero after a SUBSCRIBE confirms the channel. Pure bookkeeping: no I/O, no hiredis.
class Subscriptions {
 public:
  // Wants `channel`. Returns true if the caller must send SUBSCRIBE now (connected, not yet sent).
  bool want(std::string_view channel, bool connected);
  // Stops wanting `channel`. Returns true if the caller must send UNSUBSCRIBE now.
  bool unwant(std::string_view channel, bool connected);
  // Redis answered "subscribe" for `channel`. Returns true if the channel is now confirmed (report it).
  bool on_subscribe_reply(std::string_view channel);
  // Redis answered "unsubscribe" for `channel`.
  void on_unsubscribe_reply(std::string_view channel);

  // Redis ended the channel's subscription by itself (a cluster slot left the node; an SSUBSCRIBE refused):
  // nothing counts as sent or confirmed for it any more. answered: this was the reply to one of our commands.
  void on_dropped(std::string_view channel, bool answered);
  // A wanted channel that is not sent (after on_dropped). Returns true if the caller must send SUBSCRIBE now.
  bool resend(std::string_view channel, bool connected);

  // The connection is gone: nothing sent, nothing confirmed; channels no longer wanted are forgotten.
  void reset();
  // A new connection: marks every wanted channel as sent and returns their names, to be sent as
  // SUBSCRIBE commands. The views stay valid until the next call that changes the set.
  std::vector<std::string_view> resubscribe_all();

  bool wanted(std::string_view channel) const;     // subscribe()d and not unsubscribe()d since
  bool confirmed(std::string_view channel) const;  // wanted and confirmed on this connection
  uint64_t wanted_count() const { return wanted_count_; }
  size_t tracked() const { return chans_.size(); }  // wanted, or with commands outstanding

 private:
  struct Chan {
    bool wanted = false;       // the caller wants it
    bool sent = false;         // the last command sent for it on this connection was SUBSCRIBE
    uint32_t outstanding = 0;  // SUBSCRIBE/UNSUBSCRIBE sent on this connection, not yet answered
    bool confirmed = false;    // the latest SUBSCRIBE is answered and nothing is outstanding
  };
  using Map = std::map<std::string, Chan, std::less<>>;
  void maybe_erase(Map::iterator it);

  Map chans_;                 // by channel name (lookups by string_view, no allocation)
  uint64_t wanted_count_ = 0;  // entries with wanted set
};

}  // namespace roomcast::redis
