#include <weft/kit/remote_run.hpp>

#include <weft/codec.hpp>
#include <weft/telemetry.hpp>

namespace weft::kit {

remote_run::remote_run(const erased_workflow& wf, std::string id, std::string_view backend, bool attached)
    : wf_(wf), id_(std::move(id)), backend_(backend) {
    if (!backend_.empty() && telemetry::wanted(telemetry::severity::debug))
        telemetry::emit({.level = telemetry::severity::debug, .event = attached ? "run.attached" : "run.started",
                         .backend = backend_, .workflow = wf_.graph.name, .run_id = id_});
}

run_state remote_run::state() const {
    {
        std::lock_guard l(m_);
        if (closed_) return state_;
    }
    return live_state();
}

void remote_run::wait() const {
    while (!wait_for(std::chrono::hours(1))) {
    }
}

bool remote_run::wait_for(std::chrono::milliseconds timeout) const {
    {
        std::lock_guard l(m_);
        if (closed_) return true;
    }
    std::optional<outcome> o = await(timeout);
    if (!o) return false;
    std::shared_ptr<const void> output;
    std::exception_ptr error = o->error;
    if (o->state == run_state::succeeded) {
        try {
            output = wf_.codec->decode_output(o->output);
        } catch (...) {  // a peer that returned the wrong shape: the run's result is this error
            error = std::current_exception();
        }
    }
    bool first = false;
    {
        std::lock_guard l(m_);
        if (!closed_) {
            first = closed_ = true;
            state_ = o->state;
            output_ = std::move(output);
            error_ = error;
        }
    }
    if (first && !backend_.empty()) report_end(o->state, error);
    return true;
}

void remote_run::report_end(run_state st, const std::exception_ptr& error) const {
    using telemetry::severity;
    const severity l = st == run_state::failed ? severity::warning : st == run_state::cancelled ? severity::info : severity::debug;
    if (!telemetry::wanted(l)) return;
    std::string why;
    if (error) try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            why = e.what();
        } catch (...) {
            why = "an exception that is not a std::exception";
        }
    telemetry::emit({.level = l,
                     .event = st == run_state::failed ? "run.failed" : st == run_state::cancelled ? "run.cancelled" : "run.succeeded",
                     .backend = backend_, .workflow = wf_.graph.name, .run_id = id_,
                     .duration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since_).count(),
                     .error = st == run_state::failed ? std::string_view(why) : std::string_view()});
}

const void* remote_run::result() const {
    wait();
    std::lock_guard l(m_);
    if (error_) std::rethrow_exception(error_);
    return output_.get();
}

json::value remote_run::sinks_output(const std::function<json::value(std::size_t)>& output_of) const {
    const auto& sinks = wf_.graph.sinks;
    if (sinks.size() == 1) return output_of(sinks[0]);
    json::array a;
    a.reserve(sinks.size());
    for (std::size_t s : sinks) a.push_back(output_of(s));
    return a;
}

remote_run::outcome remote_run::failed_at_first(const std::function<std::optional<step_error>(std::size_t)>& failed_at,
                                                std::exception_ptr otherwise) const {
    for (std::size_t i : wf_.graph.topological_order)
        if (auto e = failed_at(i))
            return {run_state::failed, {}, std::make_exception_ptr(step_failed(std::string(wf_.graph.names[i]), e->error, e->attempts))};
    return {run_state::failed, {}, std::move(otherwise)};
}

remote_run::outcome remote_run::cancelled() const {
    return {run_state::cancelled, {}, std::make_exception_ptr(run_cancelled(wf_.graph.name))};
}

}  // namespace weft::kit
