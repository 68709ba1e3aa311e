#include <weft/kit/remote_run.hpp>

#include <weft/codec.hpp>

namespace weft::kit {

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
    std::lock_guard l(m_);
    if (!closed_) {
        closed_ = true;
        state_ = o->state;
        output_ = std::move(output);
        error_ = error;
    }
    return true;
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
