# Run by `cmake --install`: installs the model files listed in models.lock (not the npm tarballs they come from)
# from FACEKIT_MODELS_SOURCE into <prefix>/FACEKIT_WEIGHTS_DIR, each checked against its sha256 first.
# Without FACEKIT_MODELS_SOURCE (scripts/setup not run) the models are skipped with a message; a file that is
# missing or does not match the lock stops the installation.
if(IS_ABSOLUTE "${FACEKIT_WEIGHTS_DIR}")
  set(dest_root "${FACEKIT_WEIGHTS_DIR}")
else()
  set(dest_root "${CMAKE_INSTALL_PREFIX}/${FACEKIT_WEIGHTS_DIR}")
endif()
if(NOT IS_DIRECTORY "${FACEKIT_MODELS_SOURCE}")
  message(STATUS "Skipping the facekit models: ${FACEKIT_MODELS_SOURCE} does not exist (run scripts/setup to "
                 "fetch them, or set FACEKIT_MODELS at run time)")
  return()
endif()

file(STRINGS "${FACEKIT_MODELS_LOCK}" lock_lines REGEX "^[0-9a-f]+ +[^ ]+$")
set(count 0)
foreach(line IN LISTS lock_lines)
  string(REGEX MATCH "^([0-9a-f]+) +(.+)$" _ "${line}")
  set(sha "${CMAKE_MATCH_1}")
  set(rel "${CMAKE_MATCH_2}")
  if(rel MATCHES "^npm/")  # the downloaded packages, not used at run time
    continue()
  endif()
  set(src "${FACEKIT_MODELS_SOURCE}/${rel}")
  if(NOT EXISTS "${src}")
    message(FATAL_ERROR "facekit model file ${src} is missing; run scripts/setup to fetch the models")
  endif()
  file(SHA256 "${src}" got)
  if(NOT got STREQUAL sha)
    message(FATAL_ERROR "facekit model file ${src} has sha256 ${got}, models.lock says ${sha}; "
                        "run scripts/setup to fetch it again")
  endif()
  get_filename_component(sub "${rel}" DIRECTORY)
  file(INSTALL "${src}" DESTINATION "${dest_root}/${sub}")
  math(EXPR count "${count} + 1")
endforeach()
message(STATUS "Installed ${count} facekit model files into ${dest_root}")
