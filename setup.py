# Cython extensions are declared here (pyproject.toml holds everything else).
# Every .pyx under host/powersentinel is compiled at -O3; never -march=native in what we ship
# (SIMD beyond the baseline is chosen at run time, see analysis/simd_kernels.h). -fno-math-errno
# lets gcc vectorise sqrt; nothing here reads errno. -ffp-contract=off: no fused multiply-add
# where the run-time variants have FMA, so every variant rounds as NumPy does (bit-identical).
import glob
import os

from setuptools import setup

ext_modules = []
pyx = sorted(glob.glob("host/powersentinel/**/*.pyx", recursive=True))
if pyx and os.environ.get("POWERSENTINEL_NO_EXT") != "1":
    import numpy
    from Cython.Build import cythonize
    from setuptools import Extension

    exts = []
    for path in pyx:
        mod = path[len("host/"):-len(".pyx")].replace("/", ".")
        exts.append(Extension(mod, [path], include_dirs=[numpy.get_include()],
                              extra_compile_args=["-O3", "-fno-math-errno",
                                                  "-ffp-contract=off"],
                              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]))
    ext_modules = cythonize(exts, language_level=3,
                            compiler_directives={"boundscheck": False, "wraparound": False,
                                                 "cdivision": True, "initializedcheck": False})

setup(ext_modules=ext_modules, packages=None)
