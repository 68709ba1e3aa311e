# The Hatchet engine's gRPC API as C++: target weft_hatchet_api (weft::hatchet_api), a static library of
# the protobuf messages and the gRPC stubs of `Dispatcher` (workers) and `v1.AdminService`
# (registration, triggers, run details, cancellation).
#
# Configure time: the protos come from Hatchet's Go module at a pinned version, through the Go module
# cache (`go mod download -json`, which checks the module against go.sum's database and prints its h1:
# hash, compared with the pin below). The import closure of the roots is copied into the build dir and
# its SHA-256 (the files concatenated in sorted order) is checked too. Build time: Debian's protoc and
# grpc_cpp_plugin generate the sources into the build dir; they are compiled once. Nothing here is
# committed.
#
# Offline: -DWEFT_HATCHET_API_DIR=/path/to/hatchet@v0.104.7 (a module tree; the SHA-256 still applies).

set(WEFT_HATCHET_API_MODULE "github.com/hatchet-dev/hatchet")
set(WEFT_HATCHET_API_VERSION "v0.104.7")
set(WEFT_HATCHET_API_H1 "h1:QCW4BobdfXANNTYlqyAtlkCoJhKXNGxQVEOWYy17a+Q=")
set(WEFT_HATCHET_API_SHA256 "b410c0a97fdd531beae2173cbe15244fbb5ccd187b61196b22460f114605b07a")
set(WEFT_HATCHET_API_DIR "" CACHE PATH
    "An already downloaded ${WEFT_HATCHET_API_MODULE}@${WEFT_HATCHET_API_VERSION} tree; empty = go mod download")
set(_roots dispatcher/dispatcher.proto v1/workflows.proto)
set(_services dispatcher/dispatcher v1/workflows)

find_package(PkgConfig REQUIRED)
pkg_check_modules(weft_grpcpp REQUIRED IMPORTED_TARGET grpc++ protobuf)
find_program(WEFT_PROTOC protoc)
find_program(WEFT_GRPC_CPP_PLUGIN grpc_cpp_plugin)
if(NOT WEFT_PROTOC OR NOT WEFT_GRPC_CPP_PLUGIN)
  message(FATAL_ERROR "weft: the Hatchet backend needs protoc and grpc_cpp_plugin; install them with "
                      "scripts/deps (Debian: protobuf-compiler protobuf-compiler-grpc), "
                      "or configure with -DWEFT_HATCHET=OFF")
endif()

set(_root ${CMAKE_BINARY_DIR}/codegen/hatchet-api-${WEFT_HATCHET_API_VERSION})
set(_protos ${_root}/protos)
set(_gen ${_root}/gen)
set(_stamp ${_protos}/.weft-stamp)
set(_stamp_text "${WEFT_HATCHET_API_SHA256}")
set(_have_stamp "")
if(EXISTS ${_stamp})
  file(READ ${_stamp} _have_stamp)
endif()

# 1. The module, from the Go module cache (fetched once per machine), checked against the pin.
if(NOT _have_stamp STREQUAL _stamp_text)
  set(_module ${WEFT_HATCHET_API_DIR})
  if(NOT _module)
    find_program(WEFT_GO go)
    if(NOT WEFT_GO)
      message(FATAL_ERROR "weft: Go is needed once to fetch the Hatchet API protos "
                          "(${WEFT_HATCHET_API_MODULE}@${WEFT_HATCHET_API_VERSION}); install golang or pass "
                          "-DWEFT_HATCHET_API_DIR=<the module tree>")
    endif()
    # Outside any module (an empty dir), so the download is exactly the pinned module; GOFLAGS as
    # scripts/services.d/hatchet.sh sets them.
    file(MAKE_DIRECTORY ${_root}/download)
    message(STATUS "weft: fetching ${WEFT_HATCHET_API_MODULE}@${WEFT_HATCHET_API_VERSION} with go mod download")
    execute_process(
      COMMAND ${CMAKE_COMMAND} -E env GOFLAGS= ${WEFT_GO} mod download -json
              ${WEFT_HATCHET_API_MODULE}@${WEFT_HATCHET_API_VERSION}
      WORKING_DIRECTORY ${_root}/download
      RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
    if(NOT _rc EQUAL 0)
      message(FATAL_ERROR "weft: go mod download ${WEFT_HATCHET_API_MODULE}@${WEFT_HATCHET_API_VERSION} failed "
                          "(${_rc}): ${_err}${_out}")
    endif()
    string(JSON _module GET "${_out}" Dir)
    string(JSON _sum GET "${_out}" Sum)
    if(NOT _sum STREQUAL WEFT_HATCHET_API_H1)
      message(FATAL_ERROR "weft: ${WEFT_HATCHET_API_MODULE}@${WEFT_HATCHET_API_VERSION} has ${_sum}, "
                          "expected ${WEFT_HATCHET_API_H1}")
    endif()
  endif()
  set(_contracts ${_module}/api-contracts)

  # 2. The import closure of the roots, copied (the module cache is read-only) and checked.
  set(_closure "")
  set(_todo ${_roots})
  while(_todo)
    list(POP_FRONT _todo f)
    if(f IN_LIST _closure OR f MATCHES "^google/protobuf/")
      continue()
    endif()
    if(NOT EXISTS ${_contracts}/${f})
      message(FATAL_ERROR "weft: ${f} is imported by the Hatchet API but not in ${_contracts}")
    endif()
    list(APPEND _closure ${f})
    file(STRINGS ${_contracts}/${f} _imports REGEX "^import ")
    foreach(line IN LISTS _imports)
      if(line MATCHES "^import +(public +)?\"([^\"]+)\"")
        list(APPEND _todo ${CMAKE_MATCH_2})
      endif()
    endforeach()
  endwhile()
  list(SORT _closure)
  file(REMOVE_RECURSE ${_protos})
  set(_all "")
  foreach(f IN LISTS _closure)
    file(READ ${_contracts}/${f} _text)
    string(APPEND _all "${_text}")
    file(WRITE ${_protos}/${f} "${_text}")
  endforeach()
  string(SHA256 _sha "${_all}")
  if(NOT _sha STREQUAL WEFT_HATCHET_API_SHA256)
    file(REMOVE_RECURSE ${_protos})
    message(FATAL_ERROR "weft: the Hatchet API protos (${_closure}) have SHA-256 ${_sha}, "
                        "expected ${WEFT_HATCHET_API_SHA256}")
  endif()
  file(WRITE ${_stamp} "${_stamp_text}")
endif()

file(GLOB_RECURSE _closure RELATIVE ${_protos} ${_protos}/*.proto)
list(SORT _closure)
list(LENGTH _closure _n)
message(STATUS "weft: Hatchet API ${WEFT_HATCHET_API_VERSION}: ${_n} proto files (${_closure})")

# 3. Generation (build time) and the library.
set(_sources "")
set(_outputs "")
set(_inputs "")
foreach(f IN LISTS _closure)
  string(REGEX REPLACE "\\.proto$" "" _base ${f})
  list(APPEND _sources ${_gen}/${_base}.pb.cc)
  list(APPEND _outputs ${_gen}/${_base}.pb.cc ${_gen}/${_base}.pb.h)
  list(APPEND _inputs ${_protos}/${f})
endforeach()
set(_service_protos "")
foreach(s IN LISTS _services)
  list(APPEND _sources ${_gen}/${s}.grpc.pb.cc)
  list(APPEND _outputs ${_gen}/${s}.grpc.pb.cc ${_gen}/${s}.grpc.pb.h)
  list(APPEND _service_protos ${s}.proto)
endforeach()

add_custom_command(
  OUTPUT ${_outputs}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${_gen}
  COMMAND ${WEFT_PROTOC} -I ${_protos} --cpp_out=${_gen} ${_closure}
  COMMAND ${WEFT_PROTOC} -I ${_protos} --grpc_out=${_gen} --plugin=protoc-gen-grpc=${WEFT_GRPC_CPP_PLUGIN}
          ${_service_protos}
  DEPENDS ${_inputs} ${_stamp}
  WORKING_DIRECTORY ${_protos}
  COMMENT "weft: generating C++ for the Hatchet API (${_n} protos)"
  VERBATIM)

add_library(weft_hatchet_api STATIC ${_sources})
add_library(weft::hatchet_api ALIAS weft_hatchet_api)
# Generated code: system include, no warnings, built for compile time (-O1 -g0).
target_include_directories(weft_hatchet_api SYSTEM PUBLIC $<BUILD_INTERFACE:${_gen}>)
target_link_libraries(weft_hatchet_api PUBLIC PkgConfig::weft_grpcpp)
target_compile_features(weft_hatchet_api PUBLIC cxx_std_20)
target_compile_options(weft_hatchet_api PRIVATE -w -O1 -g0)
set_target_properties(weft_hatchet_api PROPERTIES POSITION_INDEPENDENT_CODE ON)
