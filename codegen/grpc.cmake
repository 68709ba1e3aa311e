# What the gRPC API libraries (temporal-api.cmake, hatchet-api.cmake) share: finding Debian's protoc
# and grpc_cpp_plugin, the import closure of a set of protos, and the build-time generation into one
# static library of generated code.

# weft_grpc_tools(<what> <option>): protoc, grpc_cpp_plugin and PkgConfig::weft_grpcpp (found by
# grpc-dependencies.cmake, which weftConfig.cmake runs again for a consumer), or a fatal error naming
# the backend (<what>) and the option that turns it off.
function(weft_grpc_tools what option)
  set(_weft_missing "")
  include(${CMAKE_CURRENT_FUNCTION_LIST_DIR}/grpc-dependencies.cmake)
  if(_weft_missing)
    message(FATAL_ERROR "weft: the ${what} backend needs ${_weft_missing}; install them with scripts/deps, "
                        "or configure with -D${option}=OFF")
  endif()
  find_program(WEFT_PROTOC protoc)
  find_program(WEFT_GRPC_CPP_PLUGIN grpc_cpp_plugin)
  if(NOT WEFT_PROTOC OR NOT WEFT_GRPC_CPP_PLUGIN)
    message(FATAL_ERROR "weft: the ${what} backend needs protoc and grpc_cpp_plugin; install them with "
                        "scripts/deps (Debian: protobuf-compiler protobuf-compiler-grpc), "
                        "or configure with -D${option}=OFF")
  endif()
endfunction()

# weft_proto_closure(<out-var> <dir> <what> <root.proto>...): the roots and every file they import,
# transitively (following `import` lines; google/protobuf/* comes from libprotobuf-dev), relative to
# <dir>, sorted. A missing import is a fatal error naming <what>.
function(weft_proto_closure out dir what)
  set(closure "")
  set(todo ${ARGN})
  while(todo)
    list(POP_FRONT todo f)
    if(f IN_LIST closure OR f MATCHES "^google/protobuf/")
      continue()
    endif()
    if(NOT EXISTS ${dir}/${f})
      message(FATAL_ERROR "weft: ${f} is imported by ${what} but not in ${dir}")
    endif()
    list(APPEND closure ${f})
    file(STRINGS ${dir}/${f} imports REGEX "^import ")
    foreach(line IN LISTS imports)
      if(line MATCHES "^import +(public +)?\"([^\"]+)\"")
        list(APPEND todo ${CMAKE_MATCH_2})
      endif()
    endforeach()
  endwhile()
  list(SORT closure)
  set(${out} ${closure} PARENT_SCOPE)
endfunction()

# weft_grpc_library(<target> PROTOS_DIR <dir> GEN_DIR <dir> PROTOS <f.proto>... SERVICES <f>...
#                   DEPENDS <file>... WHAT <label>)
# Generates C++ at build time (protoc --cpp_out on PROTOS, --grpc_out on SERVICES, given without
# .proto) and compiles it into the static library <target> (alias weft::<name without weft_>).
# Generated code: a SYSTEM include (its headers use deprecated enum values), no warnings, and built
# for compile time, -O1 -g0 (serialization is not where a workflow client spends its time).
function(weft_grpc_library target)
  cmake_parse_arguments(ARG "" "PROTOS_DIR;GEN_DIR;WHAT" "PROTOS;SERVICES;DEPENDS" ${ARGN})
  set(sources "")
  set(outputs "")
  set(inputs "")
  foreach(f IN LISTS ARG_PROTOS)
    string(REGEX REPLACE "\\.proto$" "" base ${f})
    list(APPEND sources ${ARG_GEN_DIR}/${base}.pb.cc)
    list(APPEND outputs ${ARG_GEN_DIR}/${base}.pb.cc ${ARG_GEN_DIR}/${base}.pb.h)
    list(APPEND inputs ${ARG_PROTOS_DIR}/${f})
  endforeach()
  set(service_protos "")
  foreach(s IN LISTS ARG_SERVICES)
    list(APPEND sources ${ARG_GEN_DIR}/${s}.grpc.pb.cc)
    list(APPEND outputs ${ARG_GEN_DIR}/${s}.grpc.pb.cc ${ARG_GEN_DIR}/${s}.grpc.pb.h)
    list(APPEND service_protos ${s}.proto)
  endforeach()
  list(LENGTH ARG_PROTOS n)

  add_custom_command(
    OUTPUT ${outputs}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${ARG_GEN_DIR}
    COMMAND ${WEFT_PROTOC} -I ${ARG_PROTOS_DIR} --cpp_out=${ARG_GEN_DIR} ${ARG_PROTOS}
    COMMAND ${WEFT_PROTOC} -I ${ARG_PROTOS_DIR} --grpc_out=${ARG_GEN_DIR}
            --plugin=protoc-gen-grpc=${WEFT_GRPC_CPP_PLUGIN} ${service_protos}
    DEPENDS ${inputs} ${ARG_DEPENDS}
    WORKING_DIRECTORY ${ARG_PROTOS_DIR}
    COMMENT "weft: generating C++ for ${ARG_WHAT} (${n} protos)"
    VERBATIM)

  string(REGEX REPLACE "^weft_" "" alias ${target})
  add_library(${target} STATIC ${sources})
  add_library(weft::${alias} ALIAS ${target})
  target_include_directories(${target} SYSTEM PUBLIC $<BUILD_INTERFACE:${ARG_GEN_DIR}>)
  target_link_libraries(${target} PUBLIC PkgConfig::weft_grpcpp)
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_compile_options(${target} PRIVATE -w -O1 -g0)
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()
