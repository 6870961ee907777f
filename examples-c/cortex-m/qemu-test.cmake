# CTest registration of the QEMU run of the Cortex-M firmware, for the host
# build (included by examples-c/CMakeLists.txt). The firmware is its own CMake
# project, cross-compiled with cmake/arm-none-eabi.cmake by run-qemu.sh in
# <build>/examples-c/cortex-m-fw; the test builds it, runs it in
# qemu-system-arm (mps2-an386) under timeout and passes on exit code 0.
find_program(FOTA_BASH bash)
if(FOTA_BASH)
  add_test(NAME cortex_m_qemu
           COMMAND "${FOTA_BASH}" "${CMAKE_CURRENT_LIST_DIR}/run-qemu.sh"
                   "${CMAKE_CURRENT_BINARY_DIR}/cortex-m-fw")
  set_tests_properties(cortex_m_qemu PROPERTIES
    LABELS "qemu"
    TIMEOUT 900
    SKIP_RETURN_CODE 77)
endif()
