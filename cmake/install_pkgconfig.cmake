# Run by `cmake --install`: writes facekit.pc for the prefix being installed to and installs it.
# In: FACEKIT_PC_TEMPLATE, FACEKIT_LIBDIR, FACEKIT_INCLUDEDIR, FACEKIT_DATADIR, FACEKIT_VERSION.
set(FACEKIT_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
# A GNUInstallDirs directory is relative to the prefix unless it was configured absolute.
foreach(dir LIBDIR INCLUDEDIR DATADIR)
  if(IS_ABSOLUTE "${FACEKIT_${dir}}")
    set(FACEKIT_PC_${dir} "${FACEKIT_${dir}}")
  else()
    set(FACEKIT_PC_${dir} "\${prefix}/${FACEKIT_${dir}}")
  endif()
endforeach()
if(IS_ABSOLUTE "${FACEKIT_LIBDIR}")
  set(pc_file "$ENV{DESTDIR}${FACEKIT_LIBDIR}/pkgconfig/facekit.pc")
else()
  set(pc_file "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/${FACEKIT_LIBDIR}/pkgconfig/facekit.pc")
endif()
# Written straight into place (no file in the build tree that two installs at once could share), and listed in
# install_manifest.txt like the files CMake installs itself.
message(STATUS "Installing: ${pc_file}")
configure_file("${FACEKIT_PC_TEMPLATE}" "${pc_file}" @ONLY)
list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${pc_file}")
