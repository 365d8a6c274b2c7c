"""Placeholder prompts for the example flows: short tones standing in for recorded Chinese speech.

``python -m telephony.ivr.prompts [FOLDER]`` writes every file of
:data:`PROMPTS` under ``FOLDER`` (default ``ivr_flows``) as an 8 kHz, mono,
16-bit WAV: a 0.25 s tone whose pitch differs per prompt, so a tester hears
which prompt plays. :data:`PROMPTS` also holds the words each prompt must
say: it is the script for the recording studio (see ``ivr_flows/README.md``
for how to replace the tones with recordings).
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

RATE = 8000
SECONDS = 0.25

#: Prompt file (relative to the flows folder) -> the words to record.
PROMPTS: dict[str, str] = {
    "prompts/12345/welcome.wav": "您好，欢迎致电12345政务服务便民热线。",
    "prompts/12345/menu_main.wav": ("政策咨询请按1，投诉举报请按2，求助请按3，人工服务请按0。"),
    "prompts/12345/menu_consult.wav": "查询工单办理进度请按1，其他咨询请按2。",
    "prompts/12315/welcome.wav": "您好，欢迎致电12315市场监管投诉举报热线。",
    "prompts/12315/menu_main.wav": (
        "消费咨询请按1，消费投诉请按2，违法行为举报请按3，人工服务请按0。"
    ),
    "prompts/12315/id_number.wav": (
        "请输入投诉人的18位身份证号码，末位是X请按星号键，输入完毕请按井号键。"
    ),
    "prompts/12319/welcome.wav": "您好，欢迎致电12319城市建设服务热线。",
    "prompts/12319/menu_main.wav": (
        "供水、燃气、市政设施咨询请按1，投诉请按2，求助请按3，"
        "燃气泄漏等紧急情况请按9，人工服务请按0。"
    ),
    "prompts/12319/gas_emergency.wav": "正在为您转接燃气抢修热线，请稍候。",
    "prompts/common/invalid.wav": "对不起，您的输入有误，请重新输入。",
    "prompts/common/timeout.wav": "对不起，没有收到您的按键，请重新选择。",
    "prompts/common/to_agent.wav": "正在为您转接人工服务，请稍候。",
    "prompts/common/closed.wav": ("现在是非工作时间。我们的工作时间是工作日上午8点半至下午5点半。"),
    "prompts/common/holiday.wav": "今天是法定节假日，人工服务暂停。",
    "prompts/common/leave_message.wav": "请在提示音后留下您的姓名、电话和诉求，按井号键结束。",
    "prompts/common/message_thanks.wav": "您的留言已记录，我们将在工作时间尽快与您联系。再见。",
    "prompts/common/message_failed.wav": "对不起，暂时无法为您录制留言。",
    "prompts/common/blocked.wav": "对不起，您的来电暂时无法受理。再见。",
    "prompts/common/goodbye.wav": "感谢您的来电，再见。",
    "prompts/common/ticket_number.wav": "请输入12位工单编号，输入完毕请按井号键。",
    "prompts/common/ticket_invalid.wav": "工单编号应为12位数字，请重新输入。",
    "prompts/common/ticket_is.wav": "您查询的工单编号是",
    "prompts/common/survey.wav": (
        "请对本次服务进行评价：非常满意请按5，满意请按4，一般请按3，不满意请按2，非常不满意请按1。"
    ),
    "prompts/common/survey_thanks.wav": "感谢您的评价，再见。",
}


def tone(path: Path, hz: float, seconds: float = SECONDS) -> None:
    """Write a sine tone as an 8 kHz mono 16-bit WAV, with 20 ms fades (no clicks)."""
    n = int(RATE * seconds)
    fade = int(RATE * 0.02)
    frames = bytearray()
    for i in range(n):
        envelope = min(1.0, i / fade, (n - 1 - i) / fade)
        sample = int(8000 * envelope * math.sin(2 * math.pi * hz * i / RATE))
        frames += struct.pack("<h", sample)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(bytes(frames))


def generate(folder: Path, *, overwrite: bool = False) -> list[Path]:
    """Write the placeholder prompts that are missing (all of them with ``overwrite``)."""
    written = []
    for i, name in enumerate(sorted(PROMPTS)):
        path = folder / name
        if path.exists() and not overwrite:
            continue
        tone(path, 400 + 40 * i)
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover
    import sys

    root = Path(sys.argv[1] if len(sys.argv) > 1 else "ivr_flows")
    for p in generate(root, overwrite="--overwrite" in sys.argv):
        print(f"wrote {p}")
