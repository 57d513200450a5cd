# ctest headers.includes: every #include in include/facekit/*.hpp names a standard header (<name> with no
# directory or extension), an OpenCV header (<opencv2/...>) or another public header ("facekit/NAME.hpp" that
# exists), and <nlohmann/json.hpp> in json.hpp only. Anything else (libtorch, FAISS, SQLite, a src/ header) would make users of the installed
# library need it too. In: HEADERS_DIR.
file(GLOB headers "${HEADERS_DIR}/*.hpp")
if(NOT headers)
  message(FATAL_ERROR "no headers in ${HEADERS_DIR}")
endif()
set(bad "")
set(count 0)
foreach(h IN LISTS headers)
  file(STRINGS "${h}" includes REGEX "^[ \t]*#[ \t]*include")
  foreach(line IN LISTS includes)
    math(EXPR count "${count} + 1")
    if(line MATCHES "#[ \t]*include[ \t]*<([a-z_0-9]+)>")
      continue()  # <vector>, <cstdint>, ...
    elseif(line MATCHES "#[ \t]*include[ \t]*<opencv2/[a-z_0-9/]+\\.hpp>")
      continue()
    elseif(h MATCHES "/json\\.hpp$" AND line MATCHES "#[ \t]*include[ \t]*<nlohmann/json\\.hpp>")
      continue()  # json.hpp, the JSON views, is the one header that needs nlohmann-json (header-only) too
    elseif(line MATCHES "#[ \t]*include[ \t]*\"facekit/([a-z_0-9]+\\.hpp)\"")
      if(EXISTS "${HEADERS_DIR}/${CMAKE_MATCH_1}")
        continue()
      endif()
    endif()
    get_filename_component(name "${h}" NAME)
    string(APPEND bad "  ${name}: ${line}\n")
  endforeach()
endforeach()
if(bad)
  message(FATAL_ERROR "public headers include what users of the installed library may not have:\n${bad}")
endif()
list(LENGTH headers n)
message(STATUS "${n} public headers, ${count} includes, all standard, OpenCV or facekit/")
