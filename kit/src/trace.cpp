#include <weft/trace.hpp>

#include <chrono>
#include <mutex>
#include <random>
#include <shared_mutex>

namespace weft::telemetry {

namespace detail {
std::atomic<bool> exporting{false};
}

namespace {

constexpr char hex_digits[] = "0123456789abcdef";

template <std::size_t N>
std::string hex(const std::array<std::uint8_t, N>& b) {
    std::string out(2 * N, '0');
    for (std::size_t i = 0; i < N; ++i) {
        out[2 * i] = hex_digits[b[i] >> 4];
        out[2 * i + 1] = hex_digits[b[i] & 15];
    }
    return out;
}

int lower_hex(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;  // W3C: HEXDIGLC, lowercase only
}

template <std::size_t N>
bool read_hex(std::string_view s, std::array<std::uint8_t, N>& out) noexcept {
    if (s.size() != 2 * N) return false;
    for (std::size_t i = 0; i < N; ++i) {
        const int hi = lower_hex(s[2 * i]), lo = lower_hex(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = std::uint8_t(hi << 4 | lo);
    }
    return true;
}

template <std::size_t N>
bool all_zero(const std::array<std::uint8_t, N>& b) noexcept {
    for (std::uint8_t x : b)
        if (x) return false;
    return true;
}

template <std::size_t N>
std::array<std::uint8_t, N> random_id() {
    thread_local std::mt19937_64 gen{[] {
        std::random_device rd;
        std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
        return std::mt19937_64(seq);
    }()};
    std::array<std::uint8_t, N> out{};
    do {
        for (std::size_t i = 0; i < N; i += 8) {
            const std::uint64_t r = gen();
            for (std::size_t j = 0; j < 8 && i + j < N; ++j) out[i + j] = std::uint8_t(r >> (8 * j));
        }
    } while (all_zero(out));
    return out;
}

std::uint64_t now_ns() {
    return std::uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count());
}

thread_local const span_context* current = nullptr;

struct exporter_state {
    std::shared_mutex m;
    span_exporter fn;
};
exporter_state& exporter() {
    static exporter_state s;
    return s;
}

}  // namespace

std::string to_hex(const trace_id& id) { return hex(id); }
std::string to_hex(const span_id& id) { return hex(id); }
trace_id new_trace_id() { return random_id<16>(); }
span_id new_span_id() { return random_id<8>(); }

bool span_context::valid() const noexcept { return !all_zero(trace) && !all_zero(span); }

std::optional<span_context> parse_traceparent(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    if (s.size() < 55) return std::nullopt;
    std::array<std::uint8_t, 1> version{}, flags{};
    if (!read_hex(s.substr(0, 2), version) || version[0] == 0xff) return std::nullopt;
    if (version[0] == 0 ? s.size() != 55 : (s.size() > 55 && s[55] != '-')) return std::nullopt;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-') return std::nullopt;
    span_context c;
    if (!read_hex(s.substr(3, 32), c.trace) || !read_hex(s.substr(36, 16), c.span) ||
        !read_hex(s.substr(53, 2), flags))
        return std::nullopt;
    if (!c.valid()) return std::nullopt;
    c.flags = flags[0];
    return c;
}

std::string format_traceparent(const span_context& c) {
    std::string out = "00-" + hex(c.trace) + "-" + hex(c.span) + "-";
    out += hex_digits[c.flags >> 4];
    out += hex_digits[c.flags & 15];
    return out;
}

const span_context* current_context() noexcept { return current; }

scoped_context::scoped_context(span_context c) noexcept : ctx_(std::move(c)), saved_(current) { current = &ctx_; }
scoped_context::~scoped_context() { current = saved_; }

void set_span_exporter(span_exporter fn) {
    exporter_state& s = exporter();
    std::unique_lock l(s.m);
    s.fn = std::move(fn);
    detail::exporting.store(static_cast<bool>(s.fn), std::memory_order_relaxed);
}

span::span(std::string name, span_kind kind, const span_context* parent) {
    if (!tracing(parent)) return;
    span_context c;
    if (parent && parent->valid()) {
        c.trace = parent->trace;
        c.flags = parent->flags;
        c.tracestate = parent->tracestate;
        rec_.parent = parent->span;
    } else {
        c.trace = new_trace_id();
    }
    c.span = new_span_id();
    recording_ = detail::exporting.load(std::memory_order_relaxed) && c.sampled();
    if (recording_) {
        rec_.name = std::move(name);
        rec_.kind = kind;
        rec_.trace = c.trace;
        rec_.span = c.span;
        rec_.tracestate = c.tracestate;
        rec_.start_ns = now_ns();
    }
    ctx_ = std::move(c);
}

void span::set(std::string key, attribute_value v) {
    if (!recording_) return;
    for (attribute& a : rec_.attributes)
        if (a.first == key) {
            a.second = std::move(v);
            return;
        }
    rec_.attributes.emplace_back(std::move(key), std::move(v));
}

void span::set_error(std::string_view message) {
    if (!recording_) return;
    rec_.status = span_status::error;
    rec_.status_message = std::string(message);
}

void span::set_ok() {
    if (recording_) rec_.status = span_status::ok;
}

void span::end() noexcept {
    if (!recording_) return;
    recording_ = false;
    try {
        rec_.end_ns = now_ns();
        exporter_state& s = exporter();
        std::shared_lock l(s.m);
        if (s.fn) s.fn(std::move(rec_));
    } catch (...) {
        // An exporter that cannot take the span loses it; the step it describes goes on.
    }
}

std::optional<span_context> extract(std::string_view traceparent, std::string_view tracestate) {
    auto c = parse_traceparent(traceparent);
    if (c) c->tracestate = std::string(tracestate);
    return c;
}

span run_span(std::string_view backend, std::string_view workflow, std::string_view run_id) {
    const span_context* parent = current_context();
    if (!tracing(parent)) return span({}, span_kind::producer, nullptr);
    span s("run/" + std::string(workflow), span_kind::producer, parent);
    s.set("weft.backend", std::string(backend));
    s.set("weft.workflow", std::string(workflow));
    if (!run_id.empty()) s.set("weft.run_id", std::string(run_id));
    return s;
}

}  // namespace weft::telemetry
