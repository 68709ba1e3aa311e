// What a Temporal worker reads from the server, hostile: workflow histories (decide, step states and
// every built-in query, with and without a payload codec, as the workflow worker calls them) and the
// pieces of an activity task (payloads, headers, memo, failures; zlib-coded payloads). The first byte
// picks the message, the rest is its protobuf encoding. The worker turns any exception into a failed
// task, so the property here is no crash, no undefined behaviour, and the same decision twice.
#include "fuzz.hpp"

#include <map>

#include "../tests/temporal/dags.hpp"
#include "codec.hpp"
#include "decide.hpp"

namespace interpreter = weft::temporal_detail::interpreter;
namespace td = weft::temporal_detail;
namespace history = ::temporal::api::history::v1;
namespace common = ::temporal::api::common::v1;

namespace {

const weft::graph_view& graph_for(const history::History& h) {
    static const auto graphs = [] {
        std::map<std::string, const weft::graph_view*> m;
        dags::for_each_workflow([&]<class W>(W) { m[std::string(W::name)] = &weft::graph_of<W>; });
        return m;
    }();
    const auto& first = h.events(0).workflow_execution_started_event_attributes().workflow_type().name();
    auto it = graphs.find(first);
    return *(it != graphs.end() ? it->second : graphs.begin()->second);
}

std::string commands(const interpreter::decision& d) {
    std::string s = d.nondeterminism;
    for (const auto& c : d.commands) s += c.SerializeAsString();
    return s;
}

void replay(const history::History& h) {
    if (h.events_size() == 0) return;
    const weft::graph_view& g = graph_for(h);
    static const auto zlib = td::zlib_codec();
    for (const td::payload_codec* codec : {static_cast<const td::payload_codec*>(nullptr), zlib.get()}) {
        interpreter::decide_options o;
        o.codec = codec;
        try {
            const auto once = commands(interpreter::decide(g, h, o));
            weft::fuzz::require(commands(interpreter::decide(g, h, o)) == once, "the same history gave other commands");
        } catch (const std::exception&) {
        }
    }
    try {
        (void)interpreter::step_states(g, h);
    } catch (const std::exception&) {
    }
    for (std::string_view q : {"weft.steps", "__stack_trace", "__temporal_workflow_metadata", "no_such_query"}) {
        try {
            (void)interpreter::answer_query(g, h, q);
        } catch (const std::exception&) {
        }
    }
}

template <class M, class F>
void as(std::string_view bytes, F&& f) {
    M m;
    if (!m.ParseFromArray(bytes.data(), int(bytes.size()))) return;
    try {
        f(m);
    } catch (const std::exception&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view bytes = weft::fuzz::text(data + 1, size - 1);
    switch (data[0] % 5) {
    case 0: as<history::History>(bytes, [](const history::History& h) { replay(h); }); break;
    case 1:
        as<common::Payloads>(bytes, [](common::Payloads ps) {
            for (const auto& p : ps.payloads()) (void)td::codec::from_payload(p);
            td::codec::decode(td::zlib_codec().get(), ps);
            for (const auto& p : ps.payloads()) (void)td::codec::from_payload(p);
        });
        break;
    case 2:
        as<common::Header>(bytes, [](const common::Header& h) {
            (void)td::codec::extract_trace(h);
            weft::run_metadata m;
            td::codec::extract_metadata(h, m);
        });
        break;
    case 3: as<common::Memo>(bytes, [](const common::Memo& m) { (void)td::codec::metadata_of_memo(m); }); break;
    case 4:
        as<::temporal::api::failure::v1::Failure>(bytes, [](::temporal::api::failure::v1::Failure f) {
            (void)td::codec::from_failure(f);
            td::codec::decode(td::zlib_codec().get(), f);
        });
        break;
    }
    return 0;
}
