"""The pytest plugin: the suite runs only when asked for, capabilities and
expected failures come from the backend's declarations (strict xfail), and
--liger-require-device turns missing-device skips and empty sessions into
failures. Sessions run in-process; a recording backend stands in for a vendor."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs
from liger_conformance.recording import recording_backend
from liger_kernel.backend import Conformance
from liger_kernel.backends.torch.rms_norm import RMSNormFunction

DECLARED = Conformance(
    unsupported_dtypes=frozenset({"float16"}),
    expected_failures={
        "test_rms_norm.py::test_large_eps": "this backend ignores eps",
        "test_rms_norm.py::test_bad_input[X-int32]": "declared, but the test passes",
        "test_rms_norm.py::test_renamed_long_ago": "a stale entry",
    },
)


class EpsIgnoringRMSNorm(RMSNormFunction):
    """A broken rms_norm: always eps=1e-6."""

    @staticmethod
    def forward(ctx, X, W, eps, *args):
        return RMSNormFunction.forward(ctx, X, W, 1e-6, *args)


def suite(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "--pyargs", "liger_conformance", *args)


def test_unrelated_session_collects_no_suite_test(pytester):
    pytester.makepyfile("def test_alone():\n    assert True\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_pyargs_runs_the_contract_tests(pytester):
    result = suite(pytester, "--liger-backend", "torch", "-k", "test_rms_norm and test_bad_input")
    result.assert_outcomes(passed=len(bad_inputs.cases("rms_norm")))
    result.stdout.fnmatch_lines(["*liger-conformance: backend=torch device=cpu mock=none size=small*"])


def test_declared_capabilities_and_strict_expected_failures(pytester):
    with recording_backend(
        "declared",
        ("cpu",),
        delegates={"rms_norm": f"{__name__}:EpsIgnoringRMSNorm"},
        conformance=f"{__name__}:DECLARED",
    ) as recorder:
        result = suite(
            pytester,
            "--liger-backend",
            "declared",
            "-rsxX",
            "-k",
            "test_rms_norm and (test_large_eps or X-int32 or test_without_weight)",
        )
    # large_eps fails as declared (fp32, bf16); bad_dtype passes although declared: strict XPASS fails;
    # without_weight runs in two casting modes, fp16 skipped as declared unsupported
    result.assert_outcomes(passed=4, xfailed=2, failed=1, skipped=3)
    result.stdout.fnmatch_lines(["*XPASS(strict)*declared, but the test passes*"])
    result.stdout.fnmatch_lines(["SKIPPED *declares float16 unsupported*"])
    result.stdout.fnmatch_lines(
        ["*expected failure 'test_rms_norm.py::test_renamed_long_ago'*matched no collected test*"]
    )
    assert "rms_norm" in recorder.ops()


def test_missing_op_is_skipped_as_fallback(pytester):
    with recording_backend("partial", ("cpu",), ops=["rms_norm"]):
        result = suite(
            pytester, "--liger-backend", "partial", "-rs", "-k", "test_layer_norm and test_bad_input and X-int32"
        )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*'partial' has no 'layer_norm' implementation*falls back*"])


def test_missing_device_skips_unless_required(pytester):
    assert not torch.cuda.is_available()
    selection = ("--liger-backend", "cuda", "-k", "test_rms_norm and test_bad_input and X-int32")
    suite(pytester, *selection).assert_outcomes(skipped=1)
    required = suite(pytester, *selection, "--liger-require-device")
    # the skip comes from a fixture, so the failure is reported at setup, as an error
    required.assert_outcomes(errors=1)
    required.stdout.fnmatch_lines(["*--liger-require-device: a device is missing*"])


def test_required_device_session_without_tests_fails(pytester):
    result = suite(pytester, "--liger-require-device", "-k", "no_test_has_this_name")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*no test was collected*"])
    plain = suite(pytester, "-k", "no_test_has_this_name")
    assert plain.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_mock_option_runs_the_session_under_the_mock(pytester, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # restored after the test
    pytester.makepyfile(
        """
        import os, torch
        from liger_kernel.dispatch import dispatcher

        def test_under_mock(liger_device):
            assert torch.cuda.is_available() and torch.version.hip is not None
            assert dispatcher.device_alias["cpu"] == "cuda"
            assert liger_device.type == "cpu"
            assert os.environ["TRITON_INTERPRET"] == "1"
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--liger-mock", "rocm")
    result.assert_outcomes(passed=1)
    assert not torch.cuda.is_available() and torch.version.hip is None


def test_device_marker_and_helper_obey_require_device(pytester):
    pytester.makepyfile(
        """
        import pytest
        from liger_conformance import skip_missing_device

        @pytest.mark.liger_device("xpu")
        def test_marked():
            pass

        def test_helper():
            skip_missing_device("no xpu on this runner")

        def test_other_skip():
            pytest.skip("not about devices")
        """
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(skipped=3)
    required = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--liger-require-device")
    # the marker acts at setup (an error), the helper in the test body (a failure)
    required.assert_outcomes(errors=1, failed=1, skipped=1)
