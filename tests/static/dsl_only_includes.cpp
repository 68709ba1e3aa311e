// A translation unit that only declares workflows includes no backend, gRPC, Redis or JSON header.
#include <weft/dsl.hpp>

#if defined(BOOST_JSON_VALUE_HPP) || defined(BOOST_JSON_HPP) || defined(GRPCPP_GRPCPP_H) || \
    defined(HIREDIS_H) || defined(RAPIDJSON_RAPIDJSON_H_) || defined(CEREAL_CEREAL_HPP_) || \
    defined(GOOGLE_PROTOBUF_MESSAGE_H__) || defined(_GLIBCXX_THREAD) || defined(_GLIBCXX_MUTEX)
#error "weft/dsl.hpp pulled in a backend, JSON, gRPC, Redis or threading header"
#endif

int main() {}
