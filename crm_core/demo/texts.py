"""Bilingual free text for demo records: ticket subjects and symptoms, reasons, resolutions."""

# ruff: noqa: E501  (text tables)

from __future__ import annotations

# category -> [(subject_en, subject_zh, symptom_en, symptom_zh), ...]
TICKET_TEXTS: dict[str, list[tuple[str, str, str, str]]] = {
    "gpu": [
        (
            "Artifacts in games",
            "游戏中出现花屏",
            "Coloured dots and lines appear after ~10 minutes of gaming, also with the latest driver.",
            "玩游戏十分钟左右出现彩色点和横线，更新最新驱动后依旧。",
        ),
        (
            "Fans not spinning",
            "显卡风扇不转",
            "The fans never spin, even under load; the card reaches 85 °C.",
            "显卡风扇一直不转，满载时温度到 85 度。",
        ),
        (
            "Black screen under load",
            "高负载黑屏",
            "Screen goes black and fans ramp to 100% when a game starts.",
            "一进游戏就黑屏，风扇狂转。",
        ),
        (
            "Burning smell at 16-pin connector",
            "16-pin 供电口有焦味",
            "Noticed a burning smell near the 12V-2x6 plug.",
            "显卡 12V-2x6 供电接口附近有焦糊味。",
        ),
    ],
    "cpu": [
        (
            "High temperatures at idle",
            "待机温度过高",
            "CPU idles at 80 °C with the stock settings.",
            "默认设置下 CPU 待机就 80 度。",
        ),
        (
            "Random WHEA errors",
            "随机 WHEA 蓝屏",
            "Blue screen 0x124 WHEA_UNCORRECTABLE_ERROR a few times a day.",
            "每天几次蓝屏 0x124 WHEA_UNCORRECTABLE_ERROR。",
        ),
    ],
    "motherboard": [
        (
            "No POST, DRAM LED on",
            "无法开机自检，DRAM 灯亮",
            "The DRAM debug LED stays on and there is no display.",
            "主板 DRAM 故障灯常亮，无显示。",
        ),
        (
            "Wi-Fi not detected",
            "检测不到 Wi-Fi",
            "Windows does not show the onboard Wi-Fi adapter.",
            "系统里找不到板载无线网卡。",
        ),
    ],
    "ram": [
        (
            "Memtest errors",
            "内存测试报错",
            "MemTest86 reports errors on one stick at XMP/EXPO speed.",
            "开启 XMP/EXPO 后 MemTest86 报错，其中一根有问题。",
        ),
        (
            "Only half the memory shown",
            "只识别一半内存",
            "Windows shows 16 GB of 32 GB installed.",
            "装了 32GB 系统只显示 16GB。",
        ),
    ],
    "ssd": [
        (
            "SSD not detected",
            "固态硬盘识别不到",
            "The drive is not visible in the BIOS after a week of use.",
            "用了一周后 BIOS 里识别不到硬盘。",
        ),
        (
            "Very slow writes",
            "写入速度很慢",
            "Copying large files drops to 50 MB/s.",
            "拷贝大文件速度掉到 50MB/s。",
        ),
    ],
    "hdd": [
        (
            "Clicking noise",
            "硬盘有咔哒声",
            "The drive clicks repeatedly and files take long to open.",
            "硬盘一直咔哒响，打开文件很慢。",
        ),
        (
            "SMART warning",
            "SMART 警告",
            "CrystalDiskInfo shows 'Caution' with reallocated sectors.",
            "CrystalDiskInfo 显示“警告”，有重映射扇区。",
        ),
    ],
    "psu": [
        (
            "PC shuts down under load",
            "高负载自动关机",
            "The PC powers off when the GPU is at full load.",
            "显卡满载时电脑直接断电。",
        ),
        (
            "Coil whine from PSU",
            "电源有电流声",
            "Loud high-pitched whine from the PSU at idle.",
            "电源待机时有很响的高频电流声。",
        ),
    ],
    "cooler": [
        (
            "AIO pump noise",
            "水冷泵噪音",
            "Gurgling and grinding noise from the pump.",
            "水泵有咕噜声和摩擦声。",
        ),
        ("Fan not detected", "风扇检测不到", "CPU fan error at boot.", "开机提示 CPU fan error。"),
    ],
    "case": [
        (
            "Front USB ports not working",
            "前置 USB 接口不工作",
            "Front-panel USB-C port does not charge or transfer.",
            "机箱前置 USB-C 接口不能充电也不能传输。",
        ),
        (
            "Broken glass panel on delivery",
            "收到时玻璃侧板碎裂",
            "The tempered-glass side panel arrived shattered.",
            "收货时钢化玻璃侧板已经碎了。",
        ),
    ],
    "monitor": [
        (
            "Dead pixels",
            "屏幕有坏点",
            "Two bright pixels near the centre of the screen.",
            "屏幕中间附近有两个亮点。",
        ),
        (
            "Flickering with VRR",
            "开启自适应同步闪屏",
            "The screen flickers in dark scenes when FreeSync/G-SYNC is on.",
            "开启 FreeSync/G-SYNC 后暗场景闪烁。",
        ),
    ],
    "laptop": [
        (
            "Battery not charging",
            "电池充不进电",
            "Plugged in, not charging, stuck at 60%.",
            "显示已接通电源但未充电，停在 60%。",
        ),
        (
            "Overheating while gaming",
            "玩游戏过热",
            "Laptop gets very hot and throttles in games.",
            "玩游戏时机身很烫并且降频。",
        ),
    ],
    "keyboard": [
        (
            "Keys chattering",
            "按键连击",
            "The E key types twice on a single press.",
            "E 键按一次出两个字母。",
        ),
        (
            "Bluetooth keeps disconnecting",
            "蓝牙经常断连",
            "Keyboard drops the Bluetooth connection every few minutes.",
            "键盘蓝牙几分钟就断一次。",
        ),
    ],
    "mouse": [
        (
            "Double-click on single click",
            "单击变双击",
            "Left button registers double clicks.",
            "左键单击经常变成双击。",
        ),
        ("Scroll wheel jumps", "滚轮乱跳", "Scrolling jumps up and down.", "滚轮滚动时上下乱跳。"),
    ],
    "headset": [
        (
            "Microphone not working",
            "麦克风没声音",
            "Teammates cannot hear me; the mic shows no input.",
            "队友听不到我说话，麦克风没有输入。",
        ),
        (
            "No sound on the left side",
            "左耳没声音",
            "The left ear cup is silent.",
            "左边耳罩没有声音。",
        ),
    ],
    "router": [
        (
            "Wi-Fi drops every evening",
            "晚上 Wi-Fi 经常断",
            "Devices lose the 5 GHz network several times an evening.",
            "每天晚上 5G 频段会断好几次。",
        ),
        (
            "Cannot open admin page",
            "打不开管理页面",
            "192.168.0.1 does not load after a firmware update.",
            "固件升级后 192.168.0.1 打不开。",
        ),
    ],
    "ups": [
        (
            "UPS keeps beeping",
            "UPS 一直报警",
            "Continuous beeping and the battery LED is red.",
            "UPS 持续鸣叫，电池灯红色。",
        ),
        (
            "Short runtime",
            "续航时间很短",
            "Runtime dropped to 2 minutes with a normal PC.",
            "带普通电脑只能撑 2 分钟。",
        ),
    ],
}

RESOLUTIONS: list[tuple[str, str]] = [
    ("Replaced under warranty; new unit shipped.", "保修期内更换，新品已寄出。"),
    ("Repaired under warranty and returned.", "保修维修完成并已寄回。"),
    ("Solved remotely: driver/BIOS update and settings.", "远程解决：更新驱动/BIOS 并调整设置。"),
    ("No fault found after testing; returned to customer.", "检测无故障，已寄回客户。"),
    (
        "Out of warranty: paid repair accepted and completed.",
        "已过保：客户接受付费维修，维修完成。",
    ),
    ("Customer solved it with the knowledge-base article.", "客户按知识库文章自行解决。"),
]

RETURN_REASONS: list[tuple[str, str]] = [
    ("Changed my mind", "不想要了"),
    ("Ordered the wrong model", "买错型号了"),
    ("Does not fit my case", "装不进机箱"),
    ("Found a better price elsewhere", "别处更便宜"),
    ("Not compatible with my motherboard", "和主板不兼容"),
    ("Arrived damaged", "收到时已损坏"),
]

VOID_REASONS: list[tuple[str, str]] = [
    ("Physical damage: cracked PCB", "人为损坏：PCB 断裂"),
    ("Liquid damage", "进液损坏"),
    ("Burnt connector caused by incorrect cable", "使用错误线材导致接口烧毁"),
    ("Serial label removed or tampered", "序列号标签被撕毁或篡改"),
    ("Unauthorised hardware modification", "擅自改装硬件"),
]

RATING_COMMENTS: list[tuple[str, str]] = [
    ("Fast and friendly, thanks!", "处理很快，服务很好，谢谢！"),
    ("Took a while but solved.", "时间有点长，但问题解决了。"),
    ("Great support.", "客服很专业。"),
    ("Shipping back was slow.", "寄回太慢了。"),
]

LEAD_NOTES: list[tuple[str, str]] = [
    ("Asked for a quote for an office refresh.", "询问办公室电脑更新的报价。"),
    ("Building a gaming PC, budget flexible.", "准备装一台游戏主机，预算灵活。"),
    ("Interested in bulk SSD pricing.", "对固态硬盘批量价格感兴趣。"),
    ("Wants a 4K editing workstation.", "需要一台 4K 剪辑工作站。"),
    ("Follow up after trade show.", "展会后跟进。"),
]
