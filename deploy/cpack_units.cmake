# CPack pre-build script: the staged units' ExecStart names the staging folder's bin/ (the install rule wrote
# the install-time prefix); the package must name its own, CPACK_PACKAGING_INSTALL_PREFIX/bin.
file(GLOB_RECURSE _units "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*/roomcast@.service")
foreach(_u ${_units})
  file(READ "${_u}" _text)
  string(REGEX REPLACE "ExecStart=[^\n ]*/roomcast " "ExecStart=${CPACK_PACKAGING_INSTALL_PREFIX}/bin/roomcast " _text "${_text}")
  file(WRITE "${_u}" "${_text}")
endforeach()
if(NOT _units)
  message(FATAL_ERROR "cpack_units.cmake: no roomcast@.service under ${CPACK_TEMPORARY_INSTALL_DIRECTORY}")
endif()
