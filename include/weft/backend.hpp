// The seam every backend plugs into when chosen at run time.
//
// A backend receives an `erased_workflow`: the graph as plain data (names, policies, edges, parents,
// a topological order), and function pointers the typed front end instantiated for this workflow:
// how to run it in-process, and how to turn its input and output into JSON payloads for a server.
// Remote backends lower the graph to their own plan (Celery canvas, a Hatchet registration, a
// Temporal interpreter) and use the codec hooks; the embedded engine uses the in-process hook.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <weft/config.hpp>
#include <weft/dsl/policy.hpp>
#include <weft/run.hpp>

namespace weft {

namespace local_detail {
class engine;
}

struct erased_workflow {
    std::string_view name;
    std::span<const std::string_view> steps;      // wire names, by node index
    std::span<const step_policy> policies;        // by node index
    std::span<const std::size_t> topological_order;
    std::span<const std::size_t> sources;
    std::span<const std::size_t> sinks;
    std::size_t (*parent_count)(std::size_t node);
    std::size_t (*parent)(std::size_t node, std::size_t k);  // k-th parent, in declaration order

    // Runs the workflow in this process on typed values (input: the workflow's input tuple).
    std::shared_ptr<run_control> (*start_in_process)(local_detail::engine&, const void* input, run_options);
    // JSON text of the input's payloads, one per source parameter, as a JSON array.
    std::string (*encode_input)(const void* input);
    // Decodes the run's JSON output into a heap object of the output type; throws on a mismatch.
    std::shared_ptr<const void> (*decode_output)(std::string_view json);
};

class backend {
public:
    virtual ~backend() = default;
    virtual std::string_view name() const noexcept = 0;
    virtual std::shared_ptr<run_control> start(const erased_workflow& wf, const void* input, run_options opts) = 0;
};

// Backends known to this program. <weft/any_client.hpp> registers `local`; each remote backend's
// header registers itself, so linking and including a backend makes it selectable by name.
class backend_registry {
public:
    struct entry {
        std::string name;
        std::vector<std::string_view> settings;  // keys under [name] / WEFT_<NAME>_<KEY>
        std::function<std::unique_ptr<backend>(const config&)> make;
    };

    static backend_registry& instance() {
        static backend_registry r;
        return r;
    }

    bool add(entry e) {
        for (auto& x : entries_)
            if (x.name == e.name) return false;
        entries_.push_back(std::move(e));
        return true;
    }

    std::unique_ptr<backend> make(const config& c) const {
        const std::string wanted = c.backend();
        for (auto& sec : c.sections())
            if (!find(sec) && !reserved(sec))
                throw config_error("weft: unknown backend section [" + sec + "] (from " + c.origin_of_section(sec) +
                                   "); known backends: " + names());
        const entry* e = find(wanted);
        if (!e) {
            std::string msg = "weft: unknown backend '" + wanted + "' (from " + c.backend_origin() + "); ";
            if (reserved(wanted)) msg += "the " + wanted + " backend is not linked into this program; known backends: ";
            else msg += "known backends: ";
            throw config_error(msg + names());
        }
        c.check_keys(e->name, e->settings);
        return e->make(c);
    }

    std::string names() const {
        std::string n;
        for (auto& e : entries_) n += (n.empty() ? "" : ", ") + e.name;
        return n;
    }

private:
    const entry* find(std::string_view name) const {
        for (auto& e : entries_)
            if (e.name == name) return &e;
        return nullptr;
    }
    static bool reserved(std::string_view n) { return n == "celery" || n == "temporal" || n == "hatchet"; }
    std::vector<entry> entries_;
};

// Adds a remote backend to the registry, built from its settings by `options_from`. A backend's header
// calls it from an inline variable, so including the header (and linking the backend) is enough:
//     inline const bool registered = register_backend<backend_impl>("celery", {"broker_url", ...}, &options_from);
template <class Impl, class Options>
bool register_backend(std::string_view name, std::vector<std::string_view> settings,
                      Options (*options_from)(const config&)) {
    return backend_registry::instance().add({
        std::string(name),
        std::move(settings),
        [options_from](const config& c) -> std::unique_ptr<backend> { return std::make_unique<Impl>(options_from(c)); },
    });
}

}  // namespace weft
