// Payload codecs: what Python's temporalio.converter.PayloadCodec does, for weft's Temporal client and
// workers. A codec sees every payload weft sends (encode) and reads (decode): a run's arguments and
// result, each step's arguments and result, a failure's details and encoded attributes, query answers.
// Teams compress or encrypt with one; a weft worker and a Python worker with the same codec serve the
// same workflow, and the server (and anyone without the codec) sees only encoded bytes.
//
//     weft::temporal::options o{.address = ..., .task_queue = "orders"};
//     o.codec = weft::temporal::zlib_codec();      // or your own class deriving from payload_codec
//
// Not encoded, as in the Python SDK: headers (trace context) and search attributes. weft's own memo
// (`weft_steps`, step names) is left plain too, so `weft status` reads any run.
#pragma once

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace weft::temporal_detail {

// temporal.api.common.v1.Payload without protobuf: metadata ("encoding" and the codec's own keys)
// and bytes.
struct payload {
    std::map<std::string, std::string> metadata;
    std::string data;
};

class payload_codec {
public:
    virtual ~payload_codec() = default;
    // All the payloads of one message at once, in order (a run's arguments, say); the result may have
    // another number of them, as in Python's codec. decode() must pass through payloads it did not
    // encode (check the encoding), and throw on ones it cannot read: weft turns that into a
    // weft.bad_payload failure naming the payload, never a crashed worker.
    virtual std::vector<payload> encode(std::vector<payload> payloads) const = 0;
    virtual std::vector<payload> decode(std::vector<payload> payloads) const = 0;
};

// The protobuf bytes of a temporal.api.common.v1.Payload: what codecs wrap whole (Python:
// `payload.SerializeToString()`, `Payload.FromString(b)`). parse_payload throws codec_error.
std::string serialize(const payload& p);
payload parse_payload(std::string_view bytes);

class codec_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Compression: each payload becomes {"encoding": "binary/zlib"} with data = zlib(serialize(p)) (what
// zlib.compress(p.SerializeToString()) gives in Python, docs/temporal.md "Payload codecs"). Decode
// passes other encodings through.
std::shared_ptr<const payload_codec> zlib_codec(int level = 6);

}  // namespace weft::temporal_detail
