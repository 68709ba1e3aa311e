// Celery's wire on hostile bytes, as a C++ worker reads them from Redis: the kombu envelope and its
// body, the canvas a message carries (applied as the worker applies the next step), result metas,
// remote-control and revoke broadcasts, ISO times, base64 and broker URLs. Each either reads or
// throws wire_error; a message that reads must encode, and read back to the same message.
#include "fuzz.hpp"

#include "canvas.hpp"
#include "codec.hpp"
#include "pidbox.hpp"
#include "transport.hpp"

using namespace weft::celery_wire;

namespace {

template <class F>
bool refused(F&& f) {
    try {
        f();
        return false;
    } catch (const wire_error&) {
    } catch (const weft::json::decode_error&) {
    } catch (const weft::json::encode_error&) {
    }
    return true;
}

void envelope(std::string_view text) {
    message m;
    if (refused([&] { decode_envelope(text, m); })) return;
    std::string once;
    weft::fuzz::require(!refused([&] { once = encode_envelope(m); }), "a message that reads does not encode");
    message again;
    weft::fuzz::require(!refused([&] { decode_envelope(once, again); }), "weft cannot read the envelope it wrote");
    weft::fuzz::require(encode_envelope(again) == once, "an envelope changed in a round trip");
    // The worker's next move after the step: the chain's next signature, or its callbacks.
    const feed from{m.root_id, m.id, m.queue.empty() ? "celery" : m.queue, weft::json::array{weft::json::value(1)}, m.metadata};
    if (!m.chain.empty()) {
        std::vector<signature> rest(m.chain.begin(), m.chain.end() - 1);
        (void)refused([&] { (void)apply(from, m.chain.back(), std::move(rest)); });
    }
    for (const signature& s : m.callbacks) (void)refused([&] { (void)apply(from, s, {}); });
    for (const signature& s : m.errbacks) (void)refused([&] { (void)apply(from, s, {}); });
    (void)reply_nodes(text);
}

// The body alone ([args, kwargs, embed]): the envelope carries it base64-encoded, which mutations
// rarely get through.
void body(std::string_view text) {
    message m;
    if (refused([&] { decode_body(text, m); })) return;
    std::string once;
    weft::fuzz::require(!refused([&] { once = encode_body(m); }), "a body that reads does not encode");
    message again;
    weft::fuzz::require(!refused([&] { decode_body(once, again); }), "weft cannot read the body it wrote");
    weft::fuzz::require(encode_body(again) == once, "a body changed in a round trip");
}

void meta(std::string_view text) {
    task_meta t;
    if (refused([&] { t = decode_meta(text); })) return;
    const std::string once = encode_meta(t);
    task_meta again;
    weft::fuzz::require(!refused([&] { again = decode_meta(once); }), "weft cannot read the meta it wrote");
    weft::fuzz::require(encode_meta(again) == once, "a meta changed in a round trip");
    (void)t.exception();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text = weft::fuzz::text(data, size);
    envelope(text);
    body(text);
    meta(text);
    (void)refused([&] { (void)decode_control(text); });
    (void)refused([&] { (void)read_revoke(text); });
    if (size < 64) {
        if (auto t = parse_iso(text)) (void)iso_utc(*t);
        (void)refused([&] { (void)base64_decode(text); });
        try {
            (void)redis_url::parse(text).redacted();
        } catch (const redis_error&) {
        }
    }
    return 0;
}
