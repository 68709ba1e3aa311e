# What the gRPC backends (weft::temporal, weft::hatchet) and their generated API libraries need from
# the system, found when a backend is configured and again by weftConfig.cmake in a consumer's project
# (see cmake/weft_backend.cmake): grpc++ and protobuf as the target PkgConfig::weft_grpcpp, with zlib
# (which gRPC itself needs; weft::temporal's zlib payload codec calls it directly).
#
# pkg-config, because that is what every gRPC/protobuf install has: Debian 12's libprotobuf-dev ships
# protobuf.pc and no CMake package (only CMake's FindProtobuf module covers it), and libgrpc++-dev
# ships grpc++.pc (libgrpc-dev has a gRPCConfig.cmake that works with FindProtobuf, too).
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND AND NOT TARGET PkgConfig::weft_grpcpp)
  pkg_check_modules(weft_grpcpp QUIET IMPORTED_TARGET GLOBAL grpc++ protobuf zlib)
endif()
if(NOT TARGET PkgConfig::weft_grpcpp)
  set(_weft_missing "grpc++, protobuf and zlib (pkg-config modules grpc++ protobuf zlib; Debian: libgrpc++-dev libprotobuf-dev zlib1g-dev)")
endif()
