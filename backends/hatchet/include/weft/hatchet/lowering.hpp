// Lowering a workflow graph to a Hatchet workflow definition (v1 AdminService/PutWorkflow), and the
// payload conventions both sides of the wire share. Plain data here; src/codec.cpp makes protobuf.
//
//     workflow  -> CreateWorkflowVersionRequest{name}
//     step      -> CreateTaskOpts{readable_id = step name, action = "<workflow>:<step>" (lowercase)}
//     edges     -> parents (readable ids, in the step's declaration order)
//     policy    -> retries = max_attempts - 1, backoff_factor = multiplier, backoff_max_seconds =
//                  maximum, timeout = timeout (0: 24h, Hatchet has no "no limit")
//     limits    -> concurrency_arr (the workflow's), rate_limits (a step's): Hatchet's own knobs, declared
//                  in hatchet::options::limits, so re-registering keeps them (docs/hatchet.md)
//
// Payloads (Hatchet requires JSON objects for run inputs and task outputs):
//   run input   one source parameter that encodes as an object: that object, as Python clients send
//               it; otherwise {"$args": [the source parameters]}
//   step output an object as is (what Python tasks return); any other value as {"$value": v}
// No described struct has a member named "$args" or "$value", so neither form is ambiguous.
// A failed task's error is hatchet-sdk's TaskRunError text, "<type>: <message>\n<trace>", so Python
// callers read the C++ exception's type as exc_type.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <weft/backend.hpp>
#include <weft/dsl/workflow.hpp>
#include <weft/json.hpp>

namespace weft {
template <class Step, class OtherStep>
struct ERROR_hatchet_step_names_collide_once_lowercased;
}

namespace weft::hatchet_wire {

// What Hatchet does with a run over a concurrency limit (v1 ConcurrencyLimitStrategy).
enum class limit_strategy {
    group_round_robin,   // it waits; groups take turns
    cancel_in_progress,  // the oldest running run of the group is cancelled
    cancel_newest,       // the new run is cancelled
};

// At most `max_runs` runs at once per value of `expression`, a CEL expression over the run
// ("input.customer"; "'all'" puts every run in one group).
struct concurrency_limit {
    std::string expression;
    int max_runs = 1;
    limit_strategy strategy = limit_strategy::group_round_robin;
};

// A step takes `units` of the engine's rate limit `key` per attempt. The key is the engine's: create
// it first (hatchet-sdk `hatchet.rate_limits.put(key, limit, duration)`).
struct rate_limit {
    std::string key;
    int units = 1;
};

// Limits of one workflow, registered with its definition.
struct workflow_limits {
    std::vector<concurrency_limit> concurrency;                          // the workflow's
    std::map<std::string, std::vector<rate_limit>, std::less<>> rate_limits;  // by step name
};

struct task_plan {
    std::string readable_id;
    std::string action;
    std::vector<std::string> parents;
    int retries = 0;
    double backoff_factor = 0;     // 0: not sent (no retries)
    int backoff_max_seconds = 0;   // 0: not sent
    std::string timeout;           // Hatchet duration ("1500ms", "24h")
    std::string schedule_timeout;  // how long a task may wait for a worker
    std::vector<rate_limit> rate_limits;
};

struct workflow_plan {
    std::string name;
    std::vector<task_plan> tasks;  // in a topological order
    std::vector<concurrency_limit> concurrency;
};

inline std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

// Hatchet's rule for workflow and task names: ^[a-zA-Z0-9.\-_]+$.
inline bool valid_name(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
               c == '_';
    });
}

inline std::string action_id(std::string_view workflow, std::string_view step) {
    return lowercase(workflow) + ":" + lowercase(step);
}

constexpr char lower_char(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
constexpr bool lower_less(std::string_view a, std::string_view b) noexcept {
    for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
        if (lower_char(a[i]) != lower_char(b[i])) return lower_char(a[i]) < lower_char(b[i]);
    return a.size() < b.size();
}
constexpr bool lower_equal(std::string_view a, std::string_view b) noexcept {
    return !lower_less(a, b) && !lower_less(b, a);
}

// Hatchet lowercases action ids (`workflow:step`), so two steps whose names differ only in case
// would be one action. Checked at compile time, with one error naming both steps; sorting keeps it
// n log n for long workflows. client<hatchet>::accepts is where it belongs.
template <workflow_type W>
consteval bool step_names_distinct_once_lowercased() {
    constexpr std::pair<std::size_t, std::size_t> clash = [] {
        std::array<std::size_t, W::size> o{};
        for (std::size_t i = 0; i < W::size; ++i) o[i] = i;
        std::sort(o.begin(), o.end(), [](std::size_t a, std::size_t b) {
            return lower_less(W::names[a], W::names[b]) || (lower_equal(W::names[a], W::names[b]) && a < b);
        });
        for (std::size_t k = 1; k < W::size; ++k)
            if (lower_equal(W::names[o[k - 1]], W::names[o[k]])) return std::pair{o[k - 1], o[k]};
        return std::pair{W::size, W::size};
    }();
    if constexpr (clash.first != W::size) {
        WEFT_DIAGNOSE("weft: hatchet: two step names differ only in upper/lower case, and Hatchet lowercases action "
                      "ids (`workflow:step`), so they would be one action: rename one",
                      ERROR_hatchet_step_names_collide_once_lowercased<typename W::template step<clash.first>,
                                                                        typename W::template step<clash.second>>);
        return false;
    } else {
        return true;
    }
}

inline std::string duration(milliseconds d) {
    if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
    return std::to_string(d.count()) + "ms";
}

// Puts the declared limits into the plan; a limit that names no step of the workflow, or a value
// Hatchet would refuse or misread, is a config_error naming the workflow and the limit.
inline void add_limits(const graph_view& wf, const workflow_limits& limits, workflow_plan& plan) {
    const std::string of = "weft: hatchet: limits of workflow '" + std::string(wf.name) + "': ";
    for (const concurrency_limit& c : limits.concurrency) {
        if (c.expression.empty())
            throw config_error(of + "a concurrency limit has no expression (a CEL expression such as "
                                    "\"input.customer\", or \"'all'\" for one group)");
        if (c.max_runs < 1)
            throw config_error(of + "concurrency limit '" + c.expression + "' has max_runs " + std::to_string(c.max_runs) +
                               "; it must be at least 1");
        plan.concurrency.push_back(c);
    }
    for (const auto& entry : limits.rate_limits) {
        const auto& [step, limits_of_step] = entry;  // clang 14 cannot capture a structured binding
        auto t = std::find_if(plan.tasks.begin(), plan.tasks.end(),
                              [&](const task_plan& x) { return x.readable_id == entry.first; });
        if (t == plan.tasks.end()) {
            std::string steps;
            for (const task_plan& p : plan.tasks) steps += (steps.empty() ? "" : ", ") + p.readable_id;
            throw config_error(of + "a rate limit names step '" + step + "', which the workflow does not have (its steps: " +
                               steps + ")");
        }
        for (const rate_limit& r : limits_of_step) {
            if (r.key.empty()) throw config_error(of + "a rate limit of step '" + step + "' has no key");
            if (r.units < 1)
                throw config_error(of + "rate limit '" + r.key + "' of step '" + step + "' takes " + std::to_string(r.units) +
                                   " units; it must take at least 1");
            t->rate_limits.push_back(r);
        }
    }
}

// `limits` (may be null): the workflow's declared limits, checked against it.
inline workflow_plan lower(const graph_view& wf, const workflow_limits* limits = nullptr) {
    auto check = [&](std::string_view what, std::string_view name) {
        if (!valid_name(name))
            throw config_error("weft: hatchet: " + std::string(what) + " name '" + std::string(name) + "' of workflow '" +
                               std::string(wf.name) + "' is not a Hatchet name (letters, digits, '.', '-', '_' only)");
    };
    check("the workflow", wf.name);
    // The same rule as step_names_distinct_once_lowercased, for a workflow chosen at run time.
    for (std::size_t i = 0; i < wf.size(); ++i)
        for (std::size_t j = i + 1; j < wf.size(); ++j)
            if (lowercase(wf.names[i]) == lowercase(wf.names[j]))
                throw config_error("weft: hatchet: steps '" + std::string(wf.names[i]) + "' and '" +
                                   std::string(wf.names[j]) + "' of workflow '" + std::string(wf.name) +
                                   "' differ only in upper/lower case, and Hatchet lowercases action ids: rename one");
    workflow_plan plan{std::string(wf.name), {}};
    for (std::size_t i : wf.topological_order) {
        check("the step", wf.names[i]);
        const step_policy& p = wf.policies[i];
        task_plan t;
        t.readable_id = std::string(wf.names[i]);
        t.action = action_id(wf.name, wf.names[i]);
        for (std::size_t k = 0; k < wf.parent_count(i); ++k) t.parents.emplace_back(wf.names[wf.parent(i, k)]);
        t.retries = std::max(0, p.retry.max_attempts - 1);
        if (t.retries > 0) {
            t.backoff_factor = std::clamp(p.retry.multiplier, 1.0, 1000.0);
            t.backoff_max_seconds =
                static_cast<int>(std::clamp<long long>((p.retry.maximum.count() + 999) / 1000, 1, 86400));
        }
        t.timeout = p.timeout.count() > 0 ? duration(p.timeout) : "24h";
        t.schedule_timeout = "5m";
        plan.tasks.push_back(std::move(t));
    }
    if (limits) add_limits(wf, *limits, plan);
    return plan;
}

// The run input as Hatchet carries it, from the codec's JSON array of the run's arguments.
inline json::value run_input(const json::array& args) {
    if (args.size() == 1 && args[0].is_object()) return args[0];
    return json::object{{"$args", args}};
}

// The source steps' arguments, from a run input (weft's or a Python client's object).
inline json::array source_args(const json::value& input) {
    // The engine keeps only objects: it stores null for a bare array or scalar a caller sent.
    if (input.is_null())
        throw json::decode_error("$.input", "the run's input as a JSON object ({\"$args\": [...]} when the first step "
                                            "does not take one struct; the engine drops an input that is not an object)",
                                 "null");
    if (const json::object* o = input.if_object()) {
        if (auto it = o->find("$args"); it != o->end() && o->size() == 1) {
            if (const json::array* a = it->value().if_array()) return *a;
            throw json::decode_error("$.input[\"$args\"]", "an array of the run's arguments",
                                     json::detail::describe(it->value()));
        }
    }
    return json::array{input};
}

inline json::value task_output(json::value v) {
    if (v.is_object()) return v;
    return json::object{{"$value", std::move(v)}};
}

inline json::value step_value(const json::value& output) {
    if (const json::object* o = output.if_object())
        if (auto it = o->find("$value"); it != o->end() && o->size() == 1) return it->value();
    return output;
}

// A step's arguments from an assignment's action_payload ({"input": ..., "parents": {...}}): the run
// input for a first step, else its parents' outputs in `parents` order (readable ids). Throws
// json::decode_error with the path of what is missing or malformed.
inline json::array action_arguments(const std::vector<std::string>& parents, std::string_view payload) {
    json::value p;
    try {
        p = json::parse(payload);
    } catch (const json::decode_error& e) {
        throw json::decode_error("$", "the assignment's action_payload as JSON", e.what());
    }
    const json::object* o = p.if_object();
    if (!o) throw json::decode_error("$", "an object as action_payload", json::detail::describe(p));
    if (parents.empty()) {
        auto it = o->find("input");
        return source_args(it == o->end() ? json::value(json::object{}) : it->value());
    }
    const json::object* outputs = nullptr;
    if (auto it = o->find("parents"); it != o->end()) outputs = it->value().if_object();
    json::array args;
    for (const std::string& name : parents) {
        const json::value* v = outputs ? outputs->if_contains(name) : nullptr;
        if (!v) throw json::decode_error("$.parents." + name, "the output of parent step '" + name + "'", "nothing");
        args.push_back(step_value(*v));
    }
    return args;
}

// A failed task's error as hatchet-sdk writes it (TaskRunError.serialize): "<type>: <message>\n<trace>",
// ": " in the type as ":::", a newline in the message as a backslash and a newline. Its
// TaskRunError.deserialize reads exc_type from the first line; text without a newline is a "HatchetError".
inline std::string task_error(std::string_view type, std::string_view message, std::string_view trace) {
    std::string out;
    for (std::size_t i = 0; i < type.size(); ++i) {
        if (type.substr(i, 2) == ": ") {
            out += ":::";
            ++i;
        } else {
            out += type[i];
        }
    }
    out += ": ";
    for (char c : message) {
        if (c == '\n') out += '\\';
        out += c;
    }
    out += '\n';
    out += trace;
    return out;
}

// "<type>: <message>" of an error in that form, from a weft or a Python worker (trace and metadata left
// out); any other text as it is.
inline std::string task_error_text(std::string_view error) {
    std::string header;
    for (std::size_t i = 0; i < error.size(); ++i) {
        if (error[i] == '\\' && i + 1 < error.size() && error[i + 1] == '\n') {
            header += '\n';
            ++i;
        } else if (error[i] == '\n') {
            const std::size_t sep = header.find(": ");
            if (sep == std::string::npos) return std::string(error);
            std::string type = header.substr(0, sep);
            for (std::size_t at; (at = type.find(":::")) != std::string::npos;) type.replace(at, 3, ": ");
            return type + header.substr(sep);
        } else {
            header += error[i];
        }
    }
    return std::string(error);
}

}  // namespace weft::hatchet_wire
