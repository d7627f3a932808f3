"""classcap's errors are one family: every error our packages define is a `ClasscapError`, the
ones that mean what a built-in means are that built-in too, and the command line turns any of
them into one sentence on stderr."""

import importlib
import inspect
import pkgutil

import pytest
from botocore.exceptions import EndpointConnectionError

import blur
import capture
import classcap
import pipeline
import upload
from blur.errors import ModelError
from blur.models import model_path
from capture.errors import CaptureError
from capture.file import FileSource
from classcap.errors import ClasscapError
from pipeline import cli
from pipeline.config import ConfigError, PipelineConfig
from upload.errors import UploadError
from upload.retry import Retrier

# Not errors: a signal a stage's loop uses to stop, never seen outside `pipeline/`.
NOT_ERRORS = {"pipeline.stages.Stopped"}


def our_exception_classes():
    found = {}
    for package in (classcap, capture, blur, upload, pipeline):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ == info.name and issubclass(cls, BaseException):
                    found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_error_our_packages_define_is_a_classcap_error():
    classes = our_exception_classes()
    assert {"capture.errors.CaptureError", "blur.errors.PrivacyError", "upload.errors.UploadError",
            "pipeline.config.ConfigError"} <= set(classes)
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, ClasscapError))
    assert outside == sorted(NOT_ERRORS)


def test_a_missing_input_file_is_a_capture_error_and_a_file_not_found_error(tmp_path):
    with pytest.raises(CaptureError) as caught:
        FileSource(tmp_path / "lesson.mp4")
    assert isinstance(caught.value, FileNotFoundError)
    assert str(caught.value) == f"Input file {tmp_path / 'lesson.mp4'} does not exist."


def test_a_model_never_provisioned_is_a_model_error_and_a_file_not_found_error(tmp_path):
    with pytest.raises(ModelError) as caught:
        model_path("centerface.onnx", cache_dir=tmp_path)
    assert isinstance(caught.value, FileNotFoundError)


def test_storage_unreachable_past_the_retries_is_an_upload_error_and_a_connection_error():
    def unreachable():
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    with pytest.raises(UploadError) as caught:
        Retrier(give_up_after_s=0.05, first_wait_s=0.01, max_wait_s=0.02).call("put a part", unreachable)
    assert isinstance(caught.value, ConnectionError)
    assert "unreachable" in str(caught.value)


def test_a_setting_out_of_range_is_a_config_error_and_a_value_error():
    with pytest.raises(ConfigError) as caught:
        PipelineConfig(crf=99)
    assert isinstance(caught.value, ValueError)


def test_the_command_line_turns_any_classcap_error_into_one_sentence(monkeypatch, capsys):
    def fails(args):
        raise ClasscapError("The station clock is a year behind; set it before recording.")

    monkeypatch.setattr("pipeline.commands.models.models_command", fails)
    assert cli.main(["models"]) == 1
    err = capsys.readouterr().err
    assert err == "classcap: The station clock is a year behind; set it before recording.\n"


def test_the_command_line_keeps_the_traceback_of_what_is_not_ours(monkeypatch):
    def breaks(args):
        raise KeyError("bug")

    monkeypatch.setattr("pipeline.commands.models.models_command", breaks)
    with pytest.raises(KeyError):
        cli.main(["models"])
