# nodata_cc_library(NAME name SRCS ... DEPS ...): one static library per module, target nodata_<name>.
function(nodata_cc_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_library(nodata_${ARG_NAME} STATIC ${ARG_SRCS})
  target_include_directories(nodata_${ARG_NAME} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(nodata_${ARG_NAME} PUBLIC ${ARG_DEPS})
endfunction()

# nodata_cc_test(NAME name SRCS ... DEPS ...): a GoogleTest binary registered with CTest.
function(nodata_cc_test)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  gtest_discover_tests(${ARG_NAME} DISCOVERY_TIMEOUT 30)
endfunction()

include(GoogleTest)
