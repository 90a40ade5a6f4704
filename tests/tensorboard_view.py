"""What TensorBoard shows of a folder, read by TensorBoard's own code (its HParams plugin's
handlers, as its web page asks them), for the tests of the event files losstune writes."""

from __future__ import annotations

from pathlib import Path


def hparams_view(logdir: Path) -> tuple:
    """(the HParams experiment, {run name: its session group}) of `logdir`, sessions of every status."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups

    runs = plugin_event_multiplexer.EventMultiplexer()
    runs.AddRunsFromDirectory(str(logdir))
    runs.Reload()
    provider = data_provider.MultiplexerDataProvider(runs, str(logdir))
    backend = backend_context.Context(base_plugin.TBContext(logdir=str(logdir), multiplexer=runs, data_provider=provider))
    request = context.RequestContext()
    experiment = get_experiment.Handler(request, backend, "", api_pb2.GetExperimentRequest()).run()
    groups = list_session_groups.Handler(request, backend, "", api_pb2.ListSessionGroupsRequest(
        start_index=0, slice_size=10_000, allowed_statuses=list(api_pb2.Status.values()))).run()
    return experiment, {group.name: group for group in groups.session_groups}


def tensorboard_steps(experiment: Path, trial_id: str, tag: str) -> list[int]:
    """The steps at which a trial's TensorBoard files hold `tag`, read by TensorBoard itself."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (trial_dir,) = experiment.glob(f"run_trial_{trial_id}_*")
    events = EventAccumulator(str(trial_dir))
    events.Reload()
    return [event.step for event in events.Scalars(tag)]
