"""A TLS-terminating gRPC proxy in front of a plaintext server, as an ingress in front of Temporal or
Hatchet is: the Temporal dev server has no TLS option, and the TLS tests must not change the shared
Hatchet engine. TLS, the client-certificate check and ALPN are grpcio's (the library hatchet-sdk
itself uses); every method is forwarded as bytes, with its metadata, deadline, status and trailers.

  python grpc_tls_proxy.py --listen 127.0.0.1:0 --upstream HOST:PORT [--cert server.pem --key server.key]
                           [--client-ca ca.pem] [--api-key-file FILE] [--log FILE] [--reset METHOD]

--client-ca: a client certificate signed by that CA is required (mTLS). --api-key-file: every call
must carry `authorization: Bearer <key>`, else UNAUTHENTICATED (as Temporal Cloud answers). Without
--cert the proxy listens in plaintext. --reset METHOD (the method's last name, repeatable): every
other call of it on each client connection (the 1st, 3rd, ...) is cancelled by the proxy after 0.2 s (grpcio's server-side
cancel: the client reads status CANCELLED, as from a frontend's RST_STREAM(CANCEL)), logged as
`METHOD RESET`. Prints `listening 127.0.0.1:PORT` once serving; stops on SIGTERM
or SIGINT.
"""
import argparse
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

MAX = 128 * 1024 * 1024
OPTIONS = [("grpc.max_receive_message_length", MAX), ("grpc.max_send_message_length", MAX)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--client-ca")
    ap.add_argument("--api-key-file")
    ap.add_argument("--log")
    ap.add_argument("--reset", action="append", default=[])
    a = ap.parse_args()
    calls = {}  # (method, client connection) -> calls seen, for --reset
    expected = None
    if a.api_key_file:
        expected = "Bearer " + open(a.api_key_file).read().strip()
    log = open(a.log, "a", buffering=1) if a.log else None
    lock = threading.Lock()
    upstream = grpc.insecure_channel(a.upstream, options=OPTIONS)

    def note(method, code):
        if log:
            with lock:
                log.write(f"{method} {code.name}\n")  # never a metadata value

    def forward(method):
        call = upstream.stream_stream(method, request_serializer=None, response_deserializer=None)

        def handle(requests, context):
            name = method.rsplit("/", 1)[-1]
            if name in a.reset:
                with lock:  # counted per client connection, so that each client meets a reset first
                    key = (name, context.peer())
                    calls[key] = calls.get(key, 0) + 1
                    reset = calls[key] % 2 == 1
                if reset:
                    time.sleep(0.2)
                    if log:
                        with lock:
                            log.write(f"{name} RESET\n")
                    context.cancel()
                    return
            md = [(k, v) for k, v in context.invocation_metadata() if not k.startswith(":")]
            if expected is not None and dict(md).get("authorization") != expected:
                note(method, grpc.StatusCode.UNAUTHENTICATED)
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong API key")
            remaining = context.time_remaining()
            if remaining is not None and remaining > 1e8:
                remaining = None  # no deadline: passed on as a timeout it would overflow into one in the past
            responses = call(requests, metadata=md, timeout=remaining)
            context.add_callback(responses.cancel)  # the client went away: so does the upstream call
            try:
                context.send_initial_metadata(responses.initial_metadata())
                for r in responses:
                    yield r
                context.set_trailing_metadata(responses.trailing_metadata())
                note(method, grpc.StatusCode.OK)
            except grpc.RpcError as e:
                note(method, e.code())
                context.set_trailing_metadata(e.trailing_metadata() or ())
                context.abort(e.code(), e.details() or "")

        return grpc.stream_stream_rpc_method_handler(handle)

    class Generic(grpc.GenericRpcHandler):
        def service(self, details):
            return forward(details.method)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=128), handlers=[Generic()], options=OPTIONS,
                         maximum_concurrent_rpcs=None)
    if a.cert:
        creds = grpc.ssl_server_credentials(
            [(open(a.key, "rb").read(), open(a.cert, "rb").read())],
            root_certificates=open(a.client_ca, "rb").read() if a.client_ca else None,
            require_client_auth=bool(a.client_ca))
        port = server.add_secure_port(a.listen, creds)
    else:
        port = server.add_insecure_port(a.listen)
    if port == 0:
        sys.exit(f"grpc_tls_proxy: cannot listen on {a.listen}")
    server.start()
    host = a.listen.rsplit(":", 1)[0]
    print(f"listening {host}:{port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop(2).wait()


if __name__ == "__main__":
    main()
