# weft_add_backend: one call per backend folder (backends/<name>/CMakeLists.txt), so that a new backend
# is its own folder plus one add_subdirectory line in backends/CMakeLists.txt.
#
#   weft_add_backend(<name>
#     SOURCES <src>...              # relative to the backend's folder
#     [PUBLIC_LINK <lib>...]        # what its public headers need (weft_json, later weft_kit, ...)
#     [PRIVATE_LINK <lib>...]       # what only its sources need (hiredis, the generated gRPC API, ...)
#     [DEFAULT ON|OFF]              # the option's default when weft is the top-level project (ON);
#                                   #   as a subproject every backend is opt-in (OFF)
#     [NEEDS <text>]                # what it needs, for the option's help text: "hiredis"
#     [DEPENDENCIES <file.cmake>]   # finds its system dependencies; see below
#     [CODEGEN <file.cmake>...]     # included once the option is on, before the library is created
#     [BUNDLE <target>...]          # libraries built for it alone (generated code): installed and
#                                   #   exported with it
#     [CORE]                        # always built, no option, part of find_package(weft) itself
#     [SHARED])                     # a shared library (default: static)
#
# It creates the option WEFT_<NAME>, the library weft_<name> with alias weft::<name> (export name
# <name>), its include dirs (<folder>/include in the build tree, include/ installed), C++20, PIC,
# installs the library and the headers under <folder>/include, and, unless CORE, makes it the
# find_package component <name>: its targets go to weft-<name>-targets.cmake and its DEPENDENCIES file
# is installed as weft-<name>-dependencies.cmake, which weftConfig.cmake includes first.
#
# A DEPENDENCIES file is plain CMake, run twice: here when the backend is configured, and by
# weftConfig.cmake in the consumer's project. It finds what PRIVATE_LINK/PUBLIC_LINK name (QUIET; e.g.
# pkg_check_modules(... IMPORTED_TARGET ...)) and, if something is missing, sets `_weft_missing` to a
# description of it ("hiredis (pkg-config module hiredis; Debian: libhiredis-dev)"). It must not fail
# by itself: the caller turns `_weft_missing` into the error (here: which option turns the backend off;
# there: weft_<name>_FOUND FALSE and find_package's reason).
#
# The shared remote kit (kit/, weft::kit, linked PUBLIC by the server backends) is added the same way,
# from the top-level CMakeLists.txt, before backends/:
#   weft_add_backend(kit CORE SHARED SOURCES src/... PUBLIC_LINK weft_json)
# (CORE puts it into weftTargets.cmake; include/ is taken from kit/include).
# weft_link_backends(<target> <prefix>): links every backend this build has (celery, temporal,
# hatchet, durable, router) into <target> and defines <prefix>_<NAME>=1 for each, so that one program can
# include the headers of those it was built with (a weft::cli program picks among them at run time).
function(weft_link_backends target prefix)
  foreach(backend celery temporal hatchet durable router)
    if(TARGET weft_${backend})
      string(TOUPPER ${backend} upper)
      target_link_libraries(${target} PRIVATE weft::${backend})
      target_compile_definitions(${target} PRIVATE ${prefix}_${upper}=1)
    endif()
  endforeach()
endfunction()

# WEFT_STATIC_LINK (top-level CMakeLists.txt): a pkg-config target a DEPENDENCIES file found links what
# `pkg-config --static` lists instead (the Libs.private and Requires.private libraries too), which -static
# resolves to archives. A library without its archive is reported as missing, so that the error names it
# and the option that turns the backend off, instead of a linker error later.
macro(_weft_static_pkg_targets)
  get_cmake_property(_weft_vars VARIABLES)
  foreach(_weft_var IN LISTS _weft_vars)
    if(NOT _weft_var MATCHES "^(weft_[a-z0-9_]+)_STATIC_LDFLAGS$")
      continue()
    endif()
    set(_weft_pc ${CMAKE_MATCH_1})
    if(NOT TARGET PkgConfig::${_weft_pc})
      continue()
    endif()
    foreach(_weft_flag IN LISTS ${_weft_var})
      if(_weft_flag MATCHES "^-l(.+)$")
        find_library(_weft_archive_${CMAKE_MATCH_1} NAMES lib${CMAKE_MATCH_1}.a
                     HINTS ${${_weft_pc}_STATIC_LIBRARY_DIRS} ${CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES})
        if(NOT _weft_archive_${CMAKE_MATCH_1})
          set(_weft_missing "lib${CMAKE_MATCH_1}.a (WEFT_STATIC_LINK links every library from its archive, and none was found for ${CMAKE_MATCH_1})")
        endif()
      endif()
    endforeach()
    set_target_properties(PkgConfig::${_weft_pc} PROPERTIES INTERFACE_LINK_LIBRARIES "${${_weft_var}}")
  endforeach()
endmacro()

function(weft_add_backend name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "CORE;SHARED" "DEFAULT;NEEDS;DEPENDENCIES"
                        "SOURCES;PUBLIC_LINK;PRIVATE_LINK;CODEGEN;BUNDLE")
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "weft_add_backend(${name}): unknown arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "weft_add_backend(${name}): no SOURCES")
  endif()
  string(TOUPPER ${name} upper)
  string(SUBSTRING ${name} 0 1 first)
  string(TOUPPER ${first} first)
  string(SUBSTRING ${name} 1 -1 rest)
  set(title "${first}${rest}")
  set(target weft_${name})

  if(NOT ARG_CORE)
    # Known (for find_package's messages) whether or not it is built.
    set_property(GLOBAL APPEND PROPERTY WEFT_KNOWN_COMPONENTS ${name})
    if(NOT DEFINED ARG_DEFAULT)
      set(ARG_DEFAULT ON)
    endif()
    if(PROJECT_IS_TOP_LEVEL AND ARG_DEFAULT)
      set(default ON)
    else()
      set(default OFF)
    endif()
    set(help "Build the ${title} backend, weft::${name}")
    if(ARG_NEEDS)
      string(APPEND help " (needs ${ARG_NEEDS})")
    endif()
    option(WEFT_${upper} "${help}" ${default})
    if(NOT WEFT_${upper})
      return()
    endif()
  endif()

  if(ARG_DEPENDENCIES)
    cmake_path(ABSOLUTE_PATH ARG_DEPENDENCIES BASE_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
    set(_weft_missing "")
    include(${ARG_DEPENDENCIES})
    if(WEFT_STATIC_LINK AND NOT _weft_missing)
      _weft_static_pkg_targets()
    endif()
    if(_weft_missing)
      message(FATAL_ERROR "weft: the ${title} backend needs ${_weft_missing}; install it (scripts/deps) "
                          "or configure with -DWEFT_${upper}=OFF")
    endif()
  endif()
  foreach(file IN LISTS ARG_CODEGEN)
    cmake_path(ABSOLUTE_PATH file BASE_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
    include(${file})
  endforeach()

  if(ARG_SHARED)
    add_library(${target} SHARED ${ARG_SOURCES})
  else()
    add_library(${target} STATIC ${ARG_SOURCES})
  endif()
  add_library(weft::${name} ALIAS ${target})
  target_include_directories(${target} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(${target} PUBLIC ${ARG_PUBLIC_LINK} PRIVATE ${ARG_PRIVATE_LINK})
  target_compile_features(${target} PUBLIC cxx_std_20)
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name} POSITION_INDEPENDENT_CODE ON)

  if(ARG_CORE)
    set(export weftTargets)
  else()
    set(export weft-${name}-targets)
  endif()
  foreach(bundled IN LISTS ARG_BUNDLE)
    string(REGEX REPLACE "^weft_" "" bundled_name ${bundled})
    set_target_properties(${bundled} PROPERTIES EXPORT_NAME ${bundled_name})
  endforeach()
  install(TARGETS ${target} ${ARG_BUNDLE} EXPORT ${export}
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/include)
    install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  endif()
  if(NOT ARG_CORE)
    install(EXPORT ${export} NAMESPACE weft:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/weft)
    if(ARG_DEPENDENCIES)
      install(FILES ${ARG_DEPENDENCIES} DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/weft
              RENAME weft-${name}-dependencies.cmake)
    endif()
    set_property(GLOBAL APPEND PROPERTY WEFT_BUILT_COMPONENTS ${name})
  endif()
endfunction()
