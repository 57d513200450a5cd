# Installation: the library, its headers, the CLI, the data files and the downloaded models, with a CMake package
# (find_package(facekit) -> facekit::facekit) and a pkg-config file. Components, as a Debian split would use them:
#   Runtime      libfacekit.so.X.Y, the facekit binary, ${CMAKE_INSTALL_DATADIR}/facekit/{models,gallery,int8}
#   Development  headers, the libfacekit.so link, lib/cmake/facekit, lib/pkgconfig/facekit.pc
#   Models       the weight files of share/models/models.lock, from models/ (fetched by scripts/setup)
# Installed data layout (the library finds it relative to its own file, see include/facekit/model.hpp):
#   share/facekit/models/*.json, models.lock   the manifests (share/models in the source tree)
#   share/facekit/gallery/open_set.json         open-set calibration (share/gallery)
#   share/facekit/int8/dlib_resnet.json         int8 activation ranges (share/int8)
#   share/facekit/weights/<package>/...         the model files (models/ in the source tree)
include(CMakePackageConfigHelpers)

option(FACEKIT_INSTALL_MODELS "Install the model files listed in share/models/models.lock" ON)
set(FACEKIT_MODELS_SOURCE "${PROJECT_SOURCE_DIR}/models" CACHE PATH
    "Where `cmake --install` takes the model files from (scripts/setup fetches them there)")
set(FACEKIT_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/facekit)

install(TARGETS facekit EXPORT facekitTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Runtime NAMELINK_COMPONENT Development)
install(TARGETS facekit_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/facekit DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        COMPONENT Development FILES_MATCHING PATTERN "*.hpp")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/share/models ${PROJECT_SOURCE_DIR}/share/gallery ${PROJECT_SOURCE_DIR}/share/int8
        DESTINATION ${FACEKIT_INSTALL_DATADIR} COMPONENT Runtime
        FILES_MATCHING PATTERN "*.json" PATTERN "models.lock")

# CMake package: relocatable (paths relative to the config file), OpenCV found for the consumer.
install(EXPORT facekitTargets NAMESPACE facekit:: DESTINATION ${FACEKIT_INSTALL_CMAKEDIR} COMPONENT Development)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/facekitConfig.cmake.in
  ${PROJECT_BINARY_DIR}/facekitConfig.cmake INSTALL_DESTINATION ${FACEKIT_INSTALL_CMAKEDIR}
  PATH_VARS FACEKIT_INSTALL_DATADIR)
# 0.x: a minor version may break the API, so only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/facekitConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/facekitConfig.cmake ${PROJECT_BINARY_DIR}/facekitConfigVersion.cmake
        DESTINATION ${FACEKIT_INSTALL_CMAKEDIR} COMPONENT Development)

# pkg-config: written at install time, so that its prefix is the one installed to (`cmake --install --prefix`).
install(CODE "
  set(FACEKIT_PC_TEMPLATE \"${CMAKE_CURRENT_LIST_DIR}/facekit.pc.in\")
  set(FACEKIT_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(FACEKIT_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(FACEKIT_DATADIR \"${FACEKIT_INSTALL_DATADIR}\")
  set(FACEKIT_VERSION \"${PROJECT_VERSION}\")
  include(\"${CMAKE_CURRENT_LIST_DIR}/install_pkgconfig.cmake\")"
  COMPONENT Development)

# Models: read at install time, so models fetched after configuring are installed too.
if(FACEKIT_INSTALL_MODELS)
  install(CODE "
    set(FACEKIT_MODELS_SOURCE \"${FACEKIT_MODELS_SOURCE}\")
    set(FACEKIT_MODELS_LOCK \"${PROJECT_SOURCE_DIR}/share/models/models.lock\")
    set(FACEKIT_WEIGHTS_DIR \"${FACEKIT_INSTALL_DATADIR}/weights\")
    include(\"${CMAKE_CURRENT_LIST_DIR}/install_models.cmake\")"
    COMPONENT Models)
endif()
