"""`classcap reblur` over an archive says how much video is done and how long the rest should take."""

from pipeline.commands.reblur import ArchiveProgress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_eta_counts_hours_of_video_not_clips():
    # given an archive of a one-hour lesson and two five-minute clips
    clock = Clock()
    progress = ArchiveProgress(3600 + 2 * 300, clock=clock)
    # when the first short clip took a minute, the rest (3,900 s of video) should take 13 minutes
    clock.now += 60
    assert progress.add(300) == "0.08 of 1.17 h of video done, about 13 min left"
    # and when the hour took 12 minutes more, the last clip another minute
    clock.now += 720
    assert progress.add(3600) == "1.08 of 1.17 h of video done, about 60 s left"
    clock.now += 60
    assert progress.add(300) == "1.17 of 1.17 h of video done"
