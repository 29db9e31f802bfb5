from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="scheduler0",
    version="0.1.0",
    description="A distributed cron-job server that calls HTTP callbacks on schedule.",
    long_description=long_description,
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # twisted.plugins is listed so the plugin file installs into Twisted's plugin
    # directory; it has no __init__.py on purpose.
    packages=find_packages(include=["scheduler0", "scheduler0.*"]) + ["twisted.plugins"],
    # scheduler0/data: files a pip-installed node needs without the source tree (the
    # systemd unit `scheduler0 config systemd-unit` prints)
    package_data={"twisted.plugins": ["scheduler0_plugin.py"],
                  "scheduler0": ["data/*", "data/ui/*"]},
    install_requires=[
        "twisted[tls]>=24.7.0",
        "klein>=24.8.0",
        "treq>=24.9.1",
        # callback URLs' host names, as Twisted's HostnameEndpoint encodes them
        "idna>=3.0",
        "croniter>=6.0.0",
        "pysyncobj>=0.3.17",
        "service-identity>=24.1.0",
        "pyyaml>=6.0",
        "attrs>=23.1.0",
        "tzdata>=2024.1",
        "prometheus-client>=0.20.0",
        # signing secrets sealed at rest (AES-GCM, HKDF); pyOpenSSL needs it too
        "cryptography>=42.0.0",
    ],
    extras_require={
        "test": ["hypothesis>=6.100.0", "jq>=1.6", "schemathesis>=4.0.0",
                 "openapi-spec-validator>=0.7.1", "selenium>=4.20.0"],
    },
    entry_points={"console_scripts": ["scheduler0 = scheduler0.cli:main"]},
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3.11",
    ],
)
