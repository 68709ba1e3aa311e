# The Temporal workers against the Python SDK's (benchmarks/temporal_bench.py drives both; see
# docs/benchmarks.md, "Temporal backend"). The weft side is the test worker process, optimised.
if(TARGET weft_temporal)
  add_executable(bench.temporal_worker ${PROJECT_SOURCE_DIR}/tests/temporal/dag_worker.cpp)
  target_link_libraries(bench.temporal_worker PRIVATE weft::temporal weft::weft)
  target_compile_options(bench.temporal_worker PRIVATE -O2)
  target_compile_definitions(bench.temporal_worker PRIVATE NDEBUG)
endif()
