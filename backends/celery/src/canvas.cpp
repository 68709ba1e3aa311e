#include "canvas.hpp"

namespace weft::celery_wire {

namespace {

signature group_of(const std::vector<std::size_t>& members, const std::function<signature(std::size_t)>& step,
                   std::string gid) {
    json::array tasks;
    for (std::size_t k = 0; k < members.size(); ++k) {
        auto s = step(members[k]);
        s.options["group_index"] = k;
        tasks.push_back(s.to_value());
    }
    signature g;
    g.task = "celery.group";
    g.kwargs["tasks"] = std::move(tasks);
    g.options["task_id"] = std::move(gid);
    g.subtask_type = "group";
    return g;
}

std::vector<signature> members_of(const signature& g) {
    if (g.subtask_type != "group") throw wire_error("a chord header is not a group");
    auto t = g.kwargs.find("tasks");
    if (t == g.kwargs.end() || !t->value().is_array()) throw wire_error("a group signature has no tasks");
    std::vector<signature> out;
    for (auto& e : t->value().get_array()) out.push_back(signature::from_value(e));
    return out;
}

}  // namespace

std::vector<signature> canvas(const std::vector<std::vector<std::size_t>>& stages,
                              const std::function<signature(std::size_t)>& step) {
    std::vector<signature> out;
    for (std::size_t k = 0; k < stages.size();) {
        if (stages[k].size() == 1) {
            out.push_back(step(stages[k][0]));
            ++k;
        } else if (k + 1 < stages.size()) {
            auto gid = new_id();
            signature c;
            c.task = "celery.chord";
            c.kwargs["kwargs"] = json::object{};
            c.kwargs["header"] = group_of(stages[k], step, gid).to_value();
            c.kwargs["body"] = step(stages[k + 1][0]).to_value();
            c.options["task_id"] = gid;
            c.subtask_type = "chord";
            out.push_back(std::move(c));
            k += 2;
        } else {
            out.push_back(group_of(stages[k], step, new_id()));
            ++k;
        }
    }
    return out;
}

message continuation(const feed& from, const signature& sig, std::vector<signature> rest) {
    message n;
    n.task = sig.task;
    n.id = sig.task_id().empty() ? new_id() : sig.task_id();
    n.root_id = from.root_id;
    n.parent_id = from.parent_id;
    if (!sig.immutable) n.args = from.args;
    for (auto& a : sig.args) n.args.push_back(a);
    n.kwargs = sig.kwargs;
    n.queue = sig.queue().empty() ? from.queue : sig.queue();
    auto option = [&](std::string_view key) -> const json::value* {
        auto it = sig.options.find(key);
        return it == sig.options.end() ? nullptr : &it->value();
    };
    if (auto p = option("priority"); p && p->is_int64()) n.priority = static_cast<int>(p->get_int64());
    if (auto g = option("group_id"); g && g->is_string()) n.group = std::string(g->get_string());
    if (auto gi = option("group_index"); gi && gi->is_int64()) n.group_index = gi->get_int64();
    if (auto t = option("time_limit"); t && t->is_number()) n.hard_time_limit = t->to_number<double>();
    if (auto t = option("soft_time_limit"); t && t->is_number()) n.soft_time_limit = t->to_number<double>();
    n.metadata = from.metadata;
    if (auto h = option("headers"); h && h->is_object())
        if (auto md = member(h->get_object(), "weft_metadata"); md && md->is_object()) n.metadata = *md;
    if (auto ch = option("chord"); ch && ch->is_object()) n.chord = signature::from_value(*ch);
    // A chord body may carry the rest of its chain in its options (weft's canvas puts it there).
    if (auto ch = option("chain"); rest.empty() && ch && ch->is_array())
        for (auto& e : ch->get_array()) rest.push_back(signature::from_value(e));
    if (auto l = option("link"); l && l->is_array())
        for (auto& e : l->get_array()) n.callbacks.push_back(signature::from_value(e));
    if (auto l = option("link_error"); l && l->is_array())
        for (auto& e : l->get_array()) n.errbacks.push_back(signature::from_value(e));
    n.chain = std::move(rest);
    return n;
}

dispatch apply(const feed& from, const signature& sig, std::vector<signature> rest) {
    dispatch out;
    if (!sig.subtask_type) {
        out.messages.push_back(continuation(from, sig, std::move(rest)));
        return out;
    }
    auto send_members = [&](const std::vector<signature>& tasks, const std::string& gid,
                            const std::optional<signature>& body) {
        for (std::size_t k = 0; k < tasks.size(); ++k) {
            auto n = continuation(from, tasks[k], {});
            n.group = gid;
            n.group_index = static_cast<std::int64_t>(k);
            if (body) n.chord = body;
            out.messages.push_back(std::move(n));
        }
    };
    if (*sig.subtask_type == "group") {
        send_members(members_of(sig), sig.task_id().empty() ? new_id() : sig.task_id(), std::nullopt);
        return out;
    }
    if (*sig.subtask_type == "chord") {
        auto h = sig.kwargs.find("header");
        auto b = sig.kwargs.find("body");
        if (h == sig.kwargs.end() || b == sig.kwargs.end()) throw wire_error("a chord signature has no header or body");
        auto g = signature::from_value(h->value());
        auto tasks = members_of(g);
        auto gid = g.task_id().empty() ? (sig.task_id().empty() ? new_id() : sig.task_id()) : g.task_id();
        auto body = signature::from_value(b->value());
        body.options["group_id"] = gid;
        if (!rest.empty()) {
            json::array r;
            for (auto& e : rest) r.push_back(e.to_value());
            body.options["chain"] = std::move(r);
        }
        // The chord size lives in the result backend, and must be there before any header finishes.
        out.chord_sizes.emplace_back(gid, tasks.size());
        send_members(tasks, gid, body);
        return out;
    }
    throw wire_error("canvas type '" + *sig.subtask_type + "' is not supported by the weft worker");
}

}  // namespace weft::celery_wire
