from setuptools import find_packages, setup

setup(
    name="ccnet_d2",
    version="0.1.0",
    description="CCNet criss-cross attention as a Detectron2 extension",
    packages=find_packages(exclude=("tests", "tools", "configs")),
    python_requires=">=3.10",
)
