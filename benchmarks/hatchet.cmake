# The Hatchet C++ worker against the Python SDK's (benchmarks/hatchet_bench.py drives both; see
# docs/benchmarks.md, "Hatchet backend"). The weft side is the test peer process, optimised.
if(TARGET weft_hatchet)
  add_executable(bench.hatchet_peer ${PROJECT_SOURCE_DIR}/tests/hatchet/peer.cpp)
  target_link_libraries(bench.hatchet_peer PRIVATE weft::hatchet weft::weft)
  target_compile_options(bench.hatchet_peer PRIVATE -O2)
  target_compile_definitions(bench.hatchet_peer PRIVATE NDEBUG)
endif()
