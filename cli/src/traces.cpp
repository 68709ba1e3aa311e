#include <weft/cli/traces.hpp>

#include <weft/json.hpp>
#include <weft/run.hpp>
#include <weft/telemetry.hpp>

#include <boost/json/serialize.hpp>
#include <httplib.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace weft::cli {

namespace {

json::value attribute_json(const telemetry::attribute_value& v) {
    return std::visit(
        [](const auto& x) -> json::value {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::string>) return json::object{{"stringValue", x}};
            else if constexpr (std::is_same_v<T, std::int64_t>) return json::object{{"intValue", std::to_string(x)}};
            else if constexpr (std::is_same_v<T, double>) return json::object{{"doubleValue", x}};
            else return json::object{{"boolValue", x}};
        },
        v);
}

json::array attributes_json(const std::vector<telemetry::attribute>& as) {
    json::array out;
    for (auto& [k, v] : as) out.push_back(json::object{{"key", k}, {"value", attribute_json(v)}});
    return out;
}

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

struct url_parts {
    std::string origin, path;  // "http://host:port", "/v1/traces"
};

url_parts split_url(const std::string& url) {
    const auto scheme = url.find("://");
    if (scheme == std::string::npos || (url.compare(0, scheme, "http") != 0 && url.compare(0, scheme, "https") != 0))
        throw config_error("weft: bad OTLP endpoint '" + url + "': expected http://host:port or https://host:port");
    const auto slash = url.find('/', scheme + 3);
    if (slash == std::string::npos) return {url, "/"};
    return {url.substr(0, slash), url.substr(slash)};
}

class otlp_exporter {
public:
    otlp_exporter(trace_export_options o, std::string url)
        : opts_(std::move(o)), url_(split_url(url)), thread_([this] { loop(); }) {}
    ~otlp_exporter() {
        {
            std::lock_guard l(m_);
            stopping_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }

    void take(telemetry::span_record&& r) {
        std::lock_guard l(m_);
        if (queue_.size() >= opts_.max_queue) {
            ++dropped_;
            return;
        }
        queue_.push_back(std::move(r));
        if (queue_.size() >= opts_.max_batch) wake_.notify_one();
    }

    void flush() {
        std::unique_lock l(m_);
        const std::uint64_t want = ++flush_asked_;
        wake_.notify_all();
        done_.wait(l, [&] { return flush_done_ >= want || stopped_; });
    }

private:
    void loop() {
        httplib::Client http(url_.origin);
        http.set_connection_timeout(2);
        http.set_read_timeout(5);
        http.set_write_timeout(5);
        std::unique_lock l(m_);
        for (;;) {
            wake_.wait_for(l, opts_.interval, [&] {
                return stopping_ || queue_.size() >= opts_.max_batch || flush_asked_ > flush_done_;
            });
            const std::uint64_t asked = flush_asked_;
            while (!queue_.empty()) {
                std::vector<telemetry::span_record> batch;
                while (!queue_.empty() && batch.size() < opts_.max_batch) {
                    batch.push_back(std::move(queue_.front()));
                    queue_.pop_front();
                }
                const std::uint64_t dropped = std::exchange(dropped_, 0);
                l.unlock();
                report_dropped(dropped);
                send(http, batch);
                l.lock();
            }
            if (const std::uint64_t dropped = std::exchange(dropped_, 0)) {
                l.unlock();
                report_dropped(dropped);
                l.lock();
            }
            flush_done_ = asked;
            done_.notify_all();
            if (stopping_) break;
        }
        stopped_ = true;
        done_.notify_all();
    }

    void report_dropped(std::uint64_t n) {
        if (n == 0) return;
        telemetry::emit({.level = telemetry::severity::warning, .event = "spans.dropped", .count = std::int64_t(n),
                         .message = "the trace export queue was full"});
    }

    void send(httplib::Client& http, const std::vector<telemetry::span_record>& batch) {
        const std::string body = otlp_json(batch, opts_.service);
        auto res = http.Post(url_.path.c_str(), body, "application/json");
        if (res && res->status >= 200 && res->status < 300) return;
        const std::string why = res ? "HTTP " + std::to_string(res->status) + " " + res->body.substr(0, 200)
                                    : "no response (" + httplib::to_string(res.error()) + ")";
        telemetry::emit({.level = telemetry::severity::warning, .event = "spans.dropped", .count = std::int64_t(batch.size()),
                         .error = why, .message = "the collector did not take the spans"});
    }

    trace_export_options opts_;
    url_parts url_;
    std::mutex m_;
    std::condition_variable wake_, done_;
    std::deque<telemetry::span_record> queue_;
    std::uint64_t dropped_ = 0, flush_asked_ = 0, flush_done_ = 0;
    bool stopping_ = false, stopped_ = false;
    std::thread thread_;  // last: started once the rest exists
};

std::mutex installed_m;
std::shared_ptr<otlp_exporter> installed;

}  // namespace

std::string otlp_json(std::span<const telemetry::span_record> spans, std::string_view service) {
    json::array out;
    for (const telemetry::span_record& s : spans) {
        json::object o{{"traceId", telemetry::to_hex(s.trace)},
                       {"spanId", telemetry::to_hex(s.span)},
                       {"name", s.name},
                       {"kind", int(s.kind) + 1},  // OTLP: 0 is SPAN_KIND_UNSPECIFIED
                       {"startTimeUnixNano", std::to_string(s.start_ns)},
                       {"endTimeUnixNano", std::to_string(s.end_ns)},
                       {"attributes", attributes_json(s.attributes)}};
        if (s.parent) o["parentSpanId"] = telemetry::to_hex(*s.parent);
        if (!s.tracestate.empty()) o["traceState"] = s.tracestate;
        json::object status{{"code", int(s.status)}};  // UNSET 0, OK 1, ERROR 2
        if (!s.status_message.empty()) status["message"] = s.status_message;
        o["status"] = std::move(status);
        out.push_back(std::move(o));
    }
    const std::string name = !service.empty() ? std::string(service)
                             : !env("OTEL_SERVICE_NAME").empty() ? env("OTEL_SERVICE_NAME")
                                                                  : std::string("unknown_service");
    json::object resource{{"attributes", json::array{json::object{{"key", "service.name"}, {"value", json::object{{"stringValue", name}}}},
                                                     json::object{{"key", "telemetry.sdk.name"}, {"value", json::object{{"stringValue", "weft"}}}},
                                                     json::object{{"key", "telemetry.sdk.language"}, {"value", json::object{{"stringValue", "cpp"}}}}}}};
    json::object scope_spans{{"scope", json::object{{"name", "weft"}}}, {"spans", std::move(out)}};
    json::object rs{{"resource", std::move(resource)}, {"scopeSpans", json::array{std::move(scope_spans)}}};
    return boost::json::serialize(json::object{{"resourceSpans", json::array{std::move(rs)}}});
}

std::string traces_url(std::string_view endpoint) {
    std::string base(endpoint);
    if (base.empty()) {
        if (std::string full = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); !full.empty()) return full;
        base = env("OTEL_EXPORTER_OTLP_ENDPOINT");
    }
    if (base.empty()) return {};
    if (base.ends_with("/v1/traces")) return base;
    while (base.ends_with('/')) base.pop_back();
    return base + "/v1/traces";
}

bool export_traces(trace_export_options o) {
    const std::string url = traces_url(o.endpoint);
    if (url.empty()) return false;
    if (o.service.empty()) o.service = env("OTEL_SERVICE_NAME");
    if (o.max_queue == 0) o.max_queue = 1;
    if (o.max_batch == 0) o.max_batch = 1;
    auto e = std::make_shared<otlp_exporter>(std::move(o), url);
    std::shared_ptr<otlp_exporter> old;
    {
        std::lock_guard l(installed_m);
        old = std::exchange(installed, e);
    }
    telemetry::set_span_exporter([e](telemetry::span_record&& r) { e->take(std::move(r)); });
    static const bool at_exit = (std::atexit([] { stop_traces(); }), true);
    (void)at_exit;
    if (old) old->flush();
    return true;
}

void flush_traces() {
    std::shared_ptr<otlp_exporter> e;
    {
        std::lock_guard l(installed_m);
        e = installed;
    }
    if (e) e->flush();
}

void stop_traces() {
    std::shared_ptr<otlp_exporter> e;
    {
        std::lock_guard l(installed_m);
        e = std::exchange(installed, nullptr);
    }
    if (!e) return;
    telemetry::set_span_exporter({});  // drops the exporter function's copy of `e`
    e->flush();
}   // the last reference: the thread is joined

}  // namespace weft::cli
