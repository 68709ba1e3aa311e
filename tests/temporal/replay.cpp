// The interpreter replays real histories: for every workflow task in runs recorded on the dev server
// (fixtures/*.json, written by capture_fixtures.py), decide() on the history up to that task's
// WorkflowTaskStarted yields exactly the commands the server recorded for it, twice with identical
// bytes; a tampered history is refused as nondeterministic, naming the event. No server needed.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>

#include <google/protobuf/util/json_util.h>
#include <weft/any_client.hpp>
#include <weft/json.hpp>

#include "dags.hpp"
#include "decide.hpp"
#include "process.hpp"

namespace interpreter = weft::temporal_detail::interpreter;
namespace history = ::temporal::api::history::v1;
namespace command = ::temporal::api::command::v1;
namespace enums = ::temporal::api::enums::v1;

namespace {

history::History load(const std::string& name) {
    const auto path = std::filesystem::path(WEFT_TEMPORAL_FIXTURES) / (name + ".json");
    const std::string text = test_process::read_file(path);
    REQUIRE(!text.empty());
    history::History h;
    google::protobuf::util::JsonParseOptions o;
    o.ignore_unknown_fields = true;  // the recording SDK may know newer fields
    auto st = google::protobuf::util::JsonStringToMessage(text, &h, o);
    INFO(path << ": " << st.ToString());
    REQUIRE(st.ok());
    return h;
}

const weft::graph_view& graph_for(const history::History& h) {
    static const std::map<std::string, const weft::graph_view*> graphs = [] {
        std::map<std::string, const weft::graph_view*> m;
        dags::for_each_workflow([&]<class W>(W) { m[std::string(W::name)] = &weft::graph_of<W>; });
        return m;
    }();
    return *graphs.at(h.events(0).workflow_execution_started_event_attributes().workflow_type().name());
}

history::History prefix(const history::History& h, int count) {
    history::History p;
    for (int i = 0; i < count; ++i) *p.add_events() = h.events(i);
    return p;
}

// The events a workflow task's commands produced: they name that task's WorkflowTaskCompleted event.
std::vector<const history::HistoryEvent*> produced_by(const history::History& h, std::int64_t completed) {
    std::vector<const history::HistoryEvent*> out;
    for (const auto& e : h.events()) {
        std::int64_t by = 0;
        switch (e.event_type()) {
        case enums::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: by = e.activity_task_scheduled_event_attributes().workflow_task_completed_event_id(); break;
        case enums::EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
            by = e.activity_task_cancel_requested_event_attributes().workflow_task_completed_event_id();
            break;
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: by = e.workflow_execution_completed_event_attributes().workflow_task_completed_event_id(); break;
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: by = e.workflow_execution_failed_event_attributes().workflow_task_completed_event_id(); break;
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: by = e.workflow_execution_canceled_event_attributes().workflow_task_completed_event_id(); break;
        default: continue;
        }
        if (by == completed) out.push_back(&e);
    }
    return out;
}

std::string bytes(const google::protobuf::Message& m) {
    std::string s;
    google::protobuf::io::StringOutputStream out(&s);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
    coded.Trim();
    return s;
}

void check_matches(const command::Command& c, const history::HistoryEvent& e) {
    INFO("recorded event " << e.event_id());
    switch (c.command_type()) {
    case enums::COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK: {
        REQUIRE(e.event_type() == enums::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED);
        const auto& want = e.activity_task_scheduled_event_attributes();
        const auto& got = c.schedule_activity_task_command_attributes();
        CHECK(got.activity_id() == want.activity_id());
        CHECK(got.activity_type().name() == want.activity_type().name());
        CHECK(got.task_queue().name() == want.task_queue().name());
        CHECK(bytes(got.input()) == bytes(want.input()));
        CHECK(bytes(got.start_to_close_timeout()) == bytes(want.start_to_close_timeout()));
        CHECK(bytes(got.heartbeat_timeout()) == bytes(want.heartbeat_timeout()));
        CHECK(got.retry_policy().maximum_attempts() == want.retry_policy().maximum_attempts());
        CHECK(bytes(got.retry_policy().initial_interval()) == bytes(want.retry_policy().initial_interval()));
        break;
    }
    case enums::COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK:
        REQUIRE(e.event_type() == enums::EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED);
        CHECK(c.request_cancel_activity_task_command_attributes().scheduled_event_id() ==
              e.activity_task_cancel_requested_event_attributes().scheduled_event_id());
        break;
    case enums::COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION:
        REQUIRE(e.event_type() == enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED);
        CHECK(bytes(c.complete_workflow_execution_command_attributes().result()) ==
              bytes(e.workflow_execution_completed_event_attributes().result()));
        break;
    case enums::COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION:
        REQUIRE(e.event_type() == enums::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED);
        CHECK(bytes(c.fail_workflow_execution_command_attributes().failure()) ==
              bytes(e.workflow_execution_failed_event_attributes().failure()));
        break;
    case enums::COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION:
        CHECK(e.event_type() == enums::EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED);
        break;
    default: FAIL("unexpected command type " << c.command_type());
    }
}

}  // namespace

TEST_CASE("decide() replays every recorded workflow task with exactly the recorded commands, deterministically", "[temporal][replay]") {
    for (const char* name : {"chain", "fan", "retry", "fail", "cancel", "timeout", "mixed"}) {
        DYNAMIC_SECTION(name) {
            const history::History h = load(name);
            const weft::graph_view& g = graph_for(h);
            int tasks = 0;
            for (int i = 0; i + 1 < h.events_size(); ++i) {
                if (h.events(i).event_type() != enums::EVENT_TYPE_WORKFLOW_TASK_STARTED) continue;
                // A task that failed or timed out produced nothing to compare with.
                if (h.events(i + 1).event_type() != enums::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) continue;
                INFO(name << ": workflow task started at event " << h.events(i).event_id());
                const history::History seen = prefix(h, i + 1);
                const interpreter::decision d = interpreter::decide(g, seen);
                REQUIRE(d.ok());
                const auto recorded = produced_by(h, h.events(i + 1).event_id());
                REQUIRE(d.commands.size() == recorded.size());
                for (std::size_t k = 0; k < recorded.size(); ++k) check_matches(d.commands[k], *recorded[k]);

                const interpreter::decision again = interpreter::decide(g, seen);
                REQUIRE(again.commands.size() == d.commands.size());
                for (std::size_t k = 0; k < d.commands.size(); ++k) CHECK(bytes(again.commands[k]) == bytes(d.commands[k]));
                ++tasks;
            }
            CHECK(tasks >= 2);
            // The whole history ends the run: nothing more to do.
            const interpreter::decision closed = interpreter::decide(g, h);
            CHECK(closed.ok());
            CHECK(closed.commands.empty());
        }
    }
}

TEST_CASE("a history that schedules an activity the graph would not is nondeterministic, naming the event", "[temporal][replay]") {
    const history::History original = load("chain");
    const weft::graph_view& g = graph_for(original);
    auto first_scheduled = [](history::History& h) -> history::HistoryEvent& {
        for (auto& e : *h.mutable_events())
            if (e.event_type() == enums::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) return e;
        throw std::logic_error("no ActivityTaskScheduled in the fixture");
    };

    SECTION("an activity id the graph lacks") {
        history::History h = original;
        auto& e = first_scheduled(h);
        e.mutable_activity_task_scheduled_event_attributes()->set_activity_id("weft_test.renamed");
        const auto d = interpreter::decide(g, h);
        REQUIRE_FALSE(d.ok());
        CHECK(d.commands.empty());
        CHECK_THAT(d.nondeterminism, Catch::Contains("history event " + std::to_string(e.event_id())));
        CHECK_THAT(d.nondeterminism, Catch::Contains("weft_test.renamed"));
    }
    SECTION("a step scheduled before its parent completed") {
        history::History h = original;
        auto& e = first_scheduled(h);
        e.mutable_activity_task_scheduled_event_attributes()->set_activity_id("weft_test.add_tax");
        e.mutable_activity_task_scheduled_event_attributes()->mutable_activity_type()->set_name("weft_test.add_tax");
        const auto d = interpreter::decide(g, h);
        REQUIRE_FALSE(d.ok());
        CHECK_THAT(d.nondeterminism, Catch::Contains("history event " + std::to_string(e.event_id())));
        CHECK_THAT(d.nondeterminism, Catch::Contains("before its parent 'weft_test.price_items' completed"));
    }
    SECTION("a type that differs from the step") {
        history::History h = original;
        auto& e = first_scheduled(h);
        e.mutable_activity_task_scheduled_event_attributes()->mutable_activity_type()->set_name("other_type");
        const auto d = interpreter::decide(g, h);
        REQUIRE_FALSE(d.ok());
        CHECK_THAT(d.nondeterminism, Catch::Contains("history event " + std::to_string(e.event_id())));
    }
}

TEST_CASE("queries are answered from the history, on running and closed runs", "[temporal][replay][query]") {
    const history::History h = load("chain");
    const weft::graph_view& g = graph_for(h);
    auto text = [](const interpreter::query_answer& a) {
        REQUIRE(a.ok);
        REQUIRE(a.answer.payloads_size() == 1);
        return a.answer.payloads(0).data();
    };
    // Up to the second ActivityTaskScheduled: the first step succeeded, the second waits.
    int cut = 0, scheduled = 0;
    for (int i = 0; i < h.events_size() && !cut; ++i)
        if (h.events(i).event_type() == enums::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED && ++scheduled == 2) cut = i + 1;
    REQUIRE(cut > 0);
    const history::History running = prefix(h, cut);

    const weft::json::value steps = weft::json::parse(text(interpreter::answer_query(g, running, interpreter::steps_query)));
    REQUIRE(steps.as_array().size() == 3);
    CHECK(steps.at(0).at("name") == "weft_test.count_items");
    CHECK(steps.at(0).at("state") == "succeeded");
    CHECK(steps.at(1).at("state") == "pending");
    CHECK(steps.at(2).at("state") == "pending");

    const weft::json::value stack = weft::json::parse(text(interpreter::answer_query(g, running, "__stack_trace")));
    CHECK_THAT(std::string(stack.as_string()), Catch::Contains("weft_test.price_items: scheduled"));
    CHECK_THAT(std::string(stack.as_string()), !Catch::Contains("weft_test.add_tax"));  // its parent has not run

    const auto meta = interpreter::answer_query(g, running, "__temporal_workflow_metadata");
    CHECK(meta.answer.payloads(0).metadata().at("encoding") == "json/protobuf");
    CHECK(meta.answer.payloads(0).metadata().at("messageType") == "temporal.api.sdk.v1.WorkflowMetadata");
    const weft::json::value m = weft::json::parse(text(meta));
    CHECK(m.at("definition").at("type") == "weft_chain");
    CHECK(m.at("definition").at("queryDefinitions").as_array().size() == 3);
    CHECK_THAT(std::string(m.at("currentDetails").as_string()), Catch::Contains("| weft_test.count_items | succeeded | 1 |"));

    const weft::json::value done = weft::json::parse(text(interpreter::answer_query(g, h, interpreter::steps_query)));
    for (const auto& s : done.as_array()) CHECK(s.at("state") == "succeeded");

    const auto unknown = interpreter::answer_query(g, h, "no_such_query");
    CHECK_FALSE(unknown.ok);
    CHECK(unknown.error ==
          "Query handler for 'no_such_query' expected but not found, known queries: [__stack_trace "
          "__temporal_workflow_metadata weft.steps]");
}

TEST_CASE("the start's memo becomes every scheduled step's weft_metadata header, the same bytes on every replay", "[temporal][replay]") {
    const history::History original = load("chain");
    const weft::graph_view& g = graph_for(original);
    int first_task = 0;
    while (original.events(first_task).event_type() != enums::EVENT_TYPE_WORKFLOW_TASK_STARTED) ++first_task;
    history::History h = prefix(original, first_task + 1);
    auto& memo = *h.mutable_events(0)->mutable_workflow_execution_started_event_attributes()->mutable_memo()->mutable_fields();
    auto json_payload = [](const std::string& data) {
        ::temporal::api::common::v1::Payload p;
        (*p.mutable_metadata())["encoding"] = "json/plain";
        p.set_data(data);
        return p;
    };
    memo["tenant"] = json_payload(R"("acme")");
    memo["shard"] = json_payload("7");                              // a Python int: its JSON text
    memo["weft_steps"] = json_payload(R"(["weft_test.count_items"])");  // weft's own: not metadata
    (*memo["nothing"].mutable_metadata())["encoding"] = "binary/null";  // None: left out

    const interpreter::decision d = interpreter::decide(g, h);
    REQUIRE(d.ok());
    REQUIRE(d.commands.size() == 1);
    const auto& header = d.commands[0].schedule_activity_task_command_attributes().header().fields();
    REQUIRE(header.count("weft_metadata") == 1);
    CHECK(header.at("weft_metadata").data() == R"({"shard":"7","tenant":"acme"})");
    const interpreter::decision again = interpreter::decide(g, h);
    REQUIRE(again.commands.size() == 1);
    CHECK(bytes(again.commands[0]) == bytes(d.commands[0]));

    // Without a memo of the caller's, no header field: recorded histories replay unchanged.
    const interpreter::decision plain = interpreter::decide(g, prefix(original, first_task + 1));
    REQUIRE(plain.commands.size() == 1);
    CHECK(plain.commands[0].schedule_activity_task_command_attributes().header().fields().count("weft_metadata") == 0);
}
