# CTest registration of the QEMU runs of the Cortex-M firmware, for the host
# build (included by examples-c/CMakeLists.txt). The firmware is its own CMake
# project, cross-compiled (with TLS) by build.sh in
# <build>/examples-c/cortex-m-fw: the test cortex_m_fw_build does that, as
# the fixture of the cases, which run tests/qemu.py (label "qemu"; each
# starts its servers, the host bridge and qemu-system-arm under timeout).
# Exit 77 (skipped) without the cross compiler, qemu-system-arm, nginx,
# openssl or (case signed) imgtool.
find_program(FOTA_BASH bash)
find_package(Python3 COMPONENTS Interpreter)
if(FOTA_BASH AND Python3_Interpreter_FOUND)
  set(_fw_dir "${CMAKE_CURRENT_BINARY_DIR}/cortex-m-fw")
  add_test(NAME cortex_m_fw_build
           COMMAND "${FOTA_BASH}" "${CMAKE_CURRENT_LIST_DIR}/build.sh" "${_fw_dir}")
  set_tests_properties(cortex_m_fw_build PROPERTIES
    LABELS "qemu"
    TIMEOUT 900
    SKIP_RETURN_CODE 77
    FIXTURES_SETUP cortex_m_fw)
  find_program(FOTA_QEMU_NGINX nginx PATHS /usr/sbin /usr/local/sbin)
  find_program(FOTA_QEMU_OPENSSL openssl)
  set(_tools)
  if(FOTA_QEMU_NGINX)
    list(APPEND _tools --nginx "${FOTA_QEMU_NGINX}")
  endif()
  if(FOTA_QEMU_OPENSSL)
    list(APPEND _tools --openssl "${FOTA_QEMU_OPENSSL}")
  endif()
  foreach(_case http https faults signed resume)
    add_test(NAME cortex_m_qemu_${_case}
             COMMAND "${Python3_EXECUTABLE}" "${CMAKE_CURRENT_LIST_DIR}/tests/qemu.py"
                     --fw "${_fw_dir}/fota-fw.elf" --case ${_case} ${_tools})
    set_tests_properties(cortex_m_qemu_${_case} PROPERTIES
      LABELS "qemu"
      TIMEOUT 120
      SKIP_RETURN_CODE 77
      FIXTURES_REQUIRED cortex_m_fw)
  endforeach()
endif()
