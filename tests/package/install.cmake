# cmake -DBUILD=<build dir> -DPREFIX=<scratch prefix> -P install.cmake: a fresh install (no file of an
# earlier one left to hide a missing rule).
file(REMOVE_RECURSE ${PREFIX})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD} --prefix ${PREFIX} COMMAND_ERROR_IS_FATAL ANY)
