// kombu's Redis transport, consumer side: the priority lists of a worker's queues, late acks through
// the unacked hash and index, and putting back what a worker held (its own at stop, a dead one's
// after the visibility timeout). A fetch decodes each envelope once, into the delivery the worker
// passes along.
#pragma once

#include <functional>

#include "codec.hpp"
#include "transport.hpp"

namespace weft::celery_wire {

struct delivery {
    std::string list, raw;
    message m;                        // as far as it could be read when `error` is set
    std::optional<wire_error> error;  // a message weft cannot run
    std::string tag;                  // its entry in unacked (empty: none)
    std::optional<std::string> meta;  // the task's meta, when the fetch read it
    bool meta_read = false;           // the fetch looked for the meta (none stored if `meta` is empty)
};

class kombu {
public:
    // meta_prefix: the result backend's meta key prefix when it is the broker's Redis (the fetch
    // then reads the metas too), else empty.
    kombu(const std::string& global_keyprefix, const std::vector<std::string>& queues, std::string meta_prefix);

    std::string list_of(std::string_view queue, int priority) const { return prefix_ + priority_list(queue, priority); }
    std::string queue_of(std::string_view list) const;

    std::string load_script(redis_connection& c) const;  // the fetch script's SHA1 on this connection
    // Up to `n` messages in one round trip, recorded in unacked as they are popped. With `block`,
    // and only when the queues are empty, it waits in BRPOP (1 s).
    // `score` is set before anything is sent: if fetch throws, reclaim(score) on a new connection
    // puts back what it may have taken.
    std::vector<delivery> fetch(redis_connection& c, const std::string& sha, unsigned n, bool block,
                                const log_fn& log, std::string& score) const;
    unsigned reclaim(redis_connection& c, const std::string& score, const log_fn& log) const;
    std::vector<std::vector<std::string>> ack_commands(const std::vector<std::string>& tags) const;
    // kombu's restore_visible: what was unacked longer than `visibility_timeout` goes back; an entry
    // that cannot be read goes to `unreadable` instead (never nowhere).
    unsigned restore_visible(redis_connection& c, std::chrono::seconds visibility_timeout, const log_fn& log,
                             const std::function<void(const std::string& entry, const std::string& reason)>& unreadable) const;
    // The task id of an envelope that does not decode, found by its key as the fetch script finds
    // it ("id": "<value>"), so that its failure can be stored; empty if there is none.
    static std::string readable_id(std::string_view raw);
    // At stop: a message this worker fetched but did not run goes back to its list.
    void restore(redis_connection& c, const delivery& d) const;

private:
    std::vector<std::string> fetch_command(unsigned n, const std::string* sha, const std::string& score) const;
    void take(redis_connection& c, redis_reply& r, std::vector<delivery>& out, const log_fn& log) const;
    void check(redis_connection& c, delivery& d, const std::string& recorded_exchange,
               const std::string& recorded_routing_key, const std::string& meta_id, const log_fn& log) const;

    std::string prefix_, meta_prefix_;
    std::vector<std::string> keys_;  // BRPOP order: priority step first, then queue
    std::string unacked_, unacked_index_, unacked_mutex_;
};

}  // namespace weft::celery_wire
