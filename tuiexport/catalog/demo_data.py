"""Pools the demo generator draws from: manufacturers, product types, suppliers, text fragments.

Manufacturer names are real brands (a demo should look like the catalog an IT reseller has);
the distributors are invented, so no price or stock figure can be mistaken for a real one's.
"""

from __future__ import annotations

# (name, short name, GS1 company prefix (6 digits), relative weight, type codes,
#  series per type: "CODE=Series|Series;CODE=…"; a type without series gets a bare model number)
MANUFACTURERS: list[tuple[str, str, str, int, str, str]] = [
    ("Lenovo", "LEN", "195348", 60, "NBK DSK WST MON TAB DOC KBD MOU SRV", "NBK=ThinkPad|IdeaPad|Yoga;DSK=ThinkCentre;WST=ThinkStation;MON=ThinkVision;TAB=Tab;DOC=ThinkPad;SRV=ThinkSystem;KBD=Professional;MOU=Professional"),
    ("HP Inc.", "HP", "196337", 60, "NBK DSK WST MON PRN TON INK KBD MOU DOC", "NBK=EliteBook|ProBook;DSK=ProDesk|EliteDesk;WST=Z2|Z4;MON=E-Series|P-Series;PRN=LaserJet|OfficeJet;TON=LaserJet;INK=HP 303|HP 912;KBD=Wireless;MOU=Wireless;DOC=USB-C"),
    ("Dell Technologies", "DEL", "884116", 50, "NBK DSK WST MON SRV DOC KBD MOU", "NBK=Latitude|Vostro|XPS;DSK=OptiPlex;WST=Precision;MON=UltraSharp|P-Series;SRV=PowerEdge;DOC=WD;KBD=KB;MOU=MS"),
    ("Apple", "APL", "194253", 30, "NBK DSK TAB SPH WAT KBD MOU HDP", "NBK=MacBook Air|MacBook Pro;DSK=iMac|Mac mini;TAB=iPad|iPad Air;SPH=iPhone;WAT=Watch;KBD=Magic Keyboard;MOU=Magic Mouse;HDP=AirPods"),
    ("Samsung", "SAM", "880608", 35, "MON SSD SPH TAB RAM MEM TVS", "MON=Odyssey|ViewFinity;SSD=990 PRO|870 EVO;SPH=Galaxy S|Galaxy A;TAB=Galaxy Tab;RAM=DDR5;MEM=EVO Plus|PRO Plus;TVS=Neo QLED|Crystal UHD"),
    ("Logitech", "LOG", "509920", 30, "MOU KBD WEB HDS SPK CNF", "MOU=MX Master|Signature|Lift;KBD=MX Keys|Signature;WEB=Brio|C920;HDS=Zone;SPK=Z;CNF=Rally|MeetUp"),
    ("Kingston Technology", "KIN", "740617", 30, "RAM SSD USB MEM", "RAM=FURY Beast|ValueRAM;SSD=KC3000|A400;USB=DataTraveler|IronKey;MEM=Canvas Go!"),
    ("Acer", "ACR", "471352", 25, "NBK DSK MON PRJ", "NBK=TravelMate|Aspire|Swift;DSK=Veriton;MON=Vero|Predator;PRJ=PD"),
    ("ASUSTeK", "ASU", "471119", 25, "NBK MON MBD GPU RTR", "NBK=ExpertBook|ZenBook;MON=ProArt|TUF Gaming;MBD=PRIME|ROG STRIX;GPU=TUF|DUAL;RTR=RT|ZenWiFi"),
    ("MSI", "MSI", "482487", 15, "NBK MBD GPU MON", "NBK=Modern|Prestige|Katana;MBD=MAG|MPG;GPU=VENTUS|GAMING X;MON=MAG|PRO"),
    ("Microsoft", "MS", "889842", 15, "NBK TAB KBD MOU SWO", "NBK=Surface Laptop;TAB=Surface Pro;KBD=Ergonomic|Designer;MOU=Bluetooth|Ergonomic;SWO=Office Home & Business|365 Business Standard"),
    ("Brother", "BRO", "497799", 20, "PRN TON LBL", "PRN=MFC|HL|DCP;TON=TN;LBL=P-touch|QL"),
    ("Canon", "CAN", "454956", 20, "PRN INK SCN CAM PRJ", "PRN=PIXMA|i-SENSYS|MAXIFY;INK=PG|CLI;SCN=imageFORMULA|CanoScan;CAM=EOS R;PRJ=LV"),
    ("Epson", "EPS", "871117", 20, "PRN INK PRJ SCN", "PRN=EcoTank|WorkForce;INK=T|XP;PRJ=EB;SCN=DS|Perfection"),
    ("Kyocera", "KYO", "632983", 12, "PRN TON", "PRN=ECOSYS|TASKalfa;TON=TK"),
    ("Lexmark", "LEX", "734646", 8, "PRN TON", "PRN=MS|CX;TON=Return Program"),
    ("Xerox", "XRX", "095205", 8, "PRN TON", "PRN=VersaLink|Phaser;TON=Metered"),
    ("Cisco Systems", "CSC", "882658", 15, "SWI RTR WAP", "SWI=Catalyst|Business;RTR=ISR|Meraki MX;WAP=Meraki MR|Catalyst"),
    ("NETGEAR", "NGR", "606449", 12, "SWI RTR WAP NAS", "SWI=ProSAFE|GS;RTR=Nighthawk|Orbi;WAP=Insight WAX;NAS=ReadyNAS"),
    ("TP-Link", "TPL", "693536", 18, "SWI RTR WAP NIC", "SWI=JetStream|TL-SG;RTR=Archer|Deco;WAP=Omada EAP;NIC=TX|UE"),
    ("Ubiquiti", "UBI", "810010", 10, "SWI WAP RTR", "SWI=UniFi Switch;WAP=UniFi U6|UniFi U7;RTR=EdgeRouter|UniFi Gateway"),
    ("Zyxel", "ZYX", "471055", 8, "SWI WAP RTR", "SWI=GS|XGS;WAP=Nebula NWA;RTR=USG FLEX"),
    ("AVM", "AVM", "400326", 10, "RTR WAP", "RTR=FRITZ!Box;WAP=FRITZ!Repeater"),
    ("Synology", "SYN", "471158", 10, "NAS", "NAS=DiskStation DS|RackStation RS"),
    ("QNAP", "QNP", "471026", 8, "NAS", "NAS=TS|TVS|TS-h"),
    ("Western Digital", "WD", "718037", 18, "HDD SSD", "HDD=WD Red Plus|WD Purple|WD Gold;SSD=WD_BLACK SN|WD Blue SA"),
    ("Seagate", "SEA", "763649", 15, "HDD", "HDD=IronWolf|Exos|BarraCuda|SkyHawk"),
    ("Toshiba", "TOS", "405153", 8, "HDD", "HDD=N300|MG|Canvio"),
    ("Crucial", "CRU", "649528", 15, "RAM SSD", "RAM=Pro|Value;SSD=P3 Plus|MX500|T500"),
    ("Corsair", "COR", "843591", 15, "RAM PSU KBD MOU CAS", "RAM=Vengeance|Dominator;PSU=RM|HX;KBD=K70|K55;MOU=M65|Harpoon;CAS=iCUE|4000D"),
    ("SanDisk", "SDK", "619659", 15, "USB MEM SSD", "USB=Ultra|Cruzer;MEM=Extreme|Ultra;SSD=Extreme Portable"),
    ("Intenso", "INT", "403425", 8, "USB MEM", "USB=Basic Line|Speed Line|Premium Line;MEM=Professional"),
    ("Intel", "ITL", "735858", 12, "CPU NIC SSD", "CPU=Core i5|Core i7|Core i9|Xeon;NIC=Ethernet X|Ethernet I;SSD=D3"),
    ("AMD", "AMD", "730143", 10, "CPU GPU", "CPU=Ryzen 5|Ryzen 7|Ryzen 9|EPYC;GPU=Radeon PRO"),
    ("PNY", "PNY", "751492", 8, "GPU RAM USB", "GPU=XLR8|NVIDIA RTX;RAM=Performance;USB=Elite"),
    ("Gigabyte", "GIG", "471933", 12, "MBD GPU", "MBD=AORUS|B650 Gaming|Z790 UD;GPU=WINDFORCE|EAGLE OC|AORUS"),
    ("be quiet!", "BQT", "425228", 8, "PSU CAS FAN", "PSU=Pure Power|Straight Power;CAS=Dark Base|Pure Base;FAN=Silent Wings|Pure Wings"),
    ("Fractal Design", "FRD", "736096", 5, "CAS FAN", "CAS=Define|Meshify|North;FAN=Aspect"),
    ("Noctua", "NOC", "912278", 5, "FAN", "FAN=NF-A12x25|NF-P14s"),
    ("APC by Schneider Electric", "APC", "731304", 10, "UPS", "UPS=Back-UPS|Smart-UPS|Easy UPS"),
    ("Eaton", "EAT", "743172", 8, "UPS", "UPS=5E|5SC|9SX|Ellipse ECO"),
    ("LG Electronics", "LG", "880609", 15, "MON TVS", "MON=UltraGear|UltraFine|UltraWide;TVS=OLED evo|QNED"),
    ("BenQ", "BNQ", "471570", 10, "MON PRJ", "MON=GW|PD|EW;PRJ=MW|TH"),
    ("EIZO", "EIZ", "495419", 6, "MON", "MON=FlexScan|ColorEdge"),
    ("iiyama", "IIY", "487323", 8, "MON", "MON=ProLite|G-Master"),
    ("Philips", "PHI", "871258", 10, "MON", "MON=Brilliance|E-Line|B-Line"),
    ("ViewSonic", "VSN", "766907", 6, "MON PRJ", "MON=VA|VG|VP;PRJ=PA|PX"),
    ("Jabra", "JAB", "570699", 10, "HDS CNF", "HDS=Evolve2|Engage;CNF=Speak2|PanaCast"),
    ("HP Poly", "POL", "017229", 8, "HDS CNF", "HDS=Voyager|Blackwire;CNF=Studio|Sync"),
    ("EPOS", "EPO", "574104", 6, "HDS", "HDS=IMPACT|ADAPT|EXPAND"),
    ("Sony", "SON", "454848", 10, "HDP CAM TVS", "HDP=WH|WF;CAM=Alpha;TVS=BRAVIA"),
    ("Cherry", "CHY", "404402", 8, "KBD MOU", "KBD=KC|Stream|DW;MOU=MW|Gentix"),
    ("Fujitsu", "FUJ", "419133", 10, "NBK DSK SCN", "NBK=LIFEBOOK;DSK=ESPRIMO|CELSIUS;SCN=fi|ScanSnap"),
    ("Panasonic", "PAN", "503775", 5, "NBK", "NBK=TOUGHBOOK"),
    ("Zebra Technologies", "ZEB", "882155", 6, "LBL SCN", "LBL=ZD|ZT;SCN=DS|Symbol LS"),
    ("Targus", "TGS", "092636", 8, "BAG DOC", "BAG=CityLite|Cypress;DOC=Universal"),
    ("Hama", "HAM", "400778", 12, "CBL BAG ADP", "CBL=Flexi-Slim|Essential;BAG=Premium;ADP=Essential"),
    ("Delock", "DLK", "406318", 12, "CBL ADP", "CBL=Easy|Premium;ADP=Easy"),
    ("LogiLink", "LGL", "405136", 10, "CBL ADP SWI", "CBL=Professional|Basic;ADP=Basic;SWI=Smart"),
    ("Anker", "ANK", "848061", 8, "CHG CBL ADP", "CHG=Nano|Prime|PowerPort;CBL=PowerLine;ADP=PowerExpand"),
    ("Belkin", "BLK", "745883", 8, "CBL CHG", "CBL=Connect;CHG=BoostCharge"),
    ("StarTech.com", "STC", "065030", 8, "CBL ADP DOC", "CBL=Thunderbolt|DisplayPort;ADP=USB-C;DOC=Thunderbolt"),
    ("Kensington", "KEN", "085896", 8, "LCK MOU DOC", "LCK=NanoSaver|ClickSafe;MOU=Expert|Pro Fit;DOC=SD"),
    ("G DATA", "GDA", "404227", 4, "SWS", "SWS=Total Security|Internet Security|Business Security"),
    ("ESET", "ESE", "859197", 4, "SWS", "SWS=NOD32 Antivirus|PROTECT Entry|Smart Security Premium"),
]

# code: (German name, English noun, eClass, price range EUR, weight range kg, specs)
# specs: lists of (German, English) alternatives; a product takes one of each list.
_SIZE_NB = [('35,6 cm (14")', '14"'), ('39,6 cm (15.6")', '15.6"'), ('33,8 cm (13.3")', '13.3"'), ('40,6 cm (16")', '16"')]
_SIZE_MON = [('60,5 cm (23.8")', '23.8"'), ('68,6 cm (27")', '27"'), ('80 cm (31.5")', '31.5"'), ('86,4 cm (34")', '34"')]
_CPU = [("Intel Core i5-1335U", "Intel Core i5-1335U"), ("Intel Core i7-1365U", "Intel Core i7-1365U"), ("AMD Ryzen 5 7530U", "AMD Ryzen 5 7530U"), ("Intel Core Ultra 7 155H", "Intel Core Ultra 7 155H"), ("AMD Ryzen 7 PRO 7840U", "AMD Ryzen 7 PRO 7840U")]
_RAM = [("8 GB RAM", "8 GB RAM"), ("16 GB RAM", "16 GB RAM"), ("32 GB RAM", "32 GB RAM"), ("64 GB RAM", "64 GB RAM")]
_DISK = [("256 GB SSD", "256 GB SSD"), ("512 GB SSD", "512 GB SSD"), ("1 TB SSD", "1 TB SSD"), ("2 TB SSD", "2 TB SSD")]
_OS = [("Windows 11 Pro", "Windows 11 Pro"), ("Windows 11 Home", "Windows 11 Home"), ("ohne Betriebssystem", "no operating system")]
_COLOR = [("Schwarz", "black"), ("Weiß", "white"), ("Grau", "grey"), ("Silber", "silver"), ("Blau", "blue"), ("Grün", "green")]
_LAYOUT = [("Deutsch (QWERTZ)", "German (QWERTZ)"), ("US-Englisch (QWERTY)", "US English (QWERTY)"), ("Schweiz (QWERTZ)", "Swiss (QWERTZ)")]
_CONN = [("kabellos, Bluetooth", "wireless, Bluetooth"), ("USB-Empfänger", "USB receiver"), ("kabelgebunden, USB-A", "wired, USB-A"), ("USB-C", "USB-C")]
_CAPACITY = [("500 GB", "500 GB"), ("1 TB", "1 TB"), ("2 TB", "2 TB"), ("4 TB", "4 TB"), ("8 TB", "8 TB")]
_FLASH = [("32 GB", "32 GB"), ("64 GB", "64 GB"), ("128 GB", "128 GB"), ("256 GB", "256 GB"), ("512 GB", "512 GB")]
_PORTS = [("8 Ports", "8 ports"), ("16 Ports", "16 ports"), ("24 Ports", "24 ports"), ("48 Ports", "48 ports")]
_LEN = [("0,5 m", "0.5 m"), ("1 m", "1 m"), ("2 m", "2 m"), ("3 m", "3 m"), ("5 m", "5 m")]
_WATT = [("550 W", "550 W"), ("650 W", "650 W"), ("750 W", "750 W"), ("850 W", "850 W"), ("1000 W", "1000 W")]
_VA = [("750 VA", "750 VA"), ("1000 VA", "1000 VA"), ("1500 VA", "1500 VA"), ("3000 VA", "3000 VA")]
_PAGES = [("Reichweite 1.500 Seiten", "yield 1,500 pages"), ("Reichweite 3.000 Seiten", "yield 3,000 pages"), ("Reichweite 10.000 Seiten", "yield 10,000 pages")]
_INKCOL = [("Schwarz", "black"), ("Cyan", "cyan"), ("Magenta", "magenta"), ("Gelb", "yellow"), ("Farbe (CMY)", "colour (CMY)")]
_USERS = [("1 Gerät, 1 Jahr", "1 device, 1 year"), ("3 Geräte, 1 Jahr", "3 devices, 1 year"), ("5 Geräte, 2 Jahre", "5 devices, 2 years"), ("10 Benutzer, 3 Jahre", "10 users, 3 years")]
_RES = [("Full HD (1920 x 1080)", "Full HD (1920 x 1080)"), ("WQHD (2560 x 1440)", "WQHD (2560 x 1440)"), ("4K UHD (3840 x 2160)", "4K UHD (3840 x 2160)")]
_WIFI = [("Wi-Fi 6 (802.11ax)", "Wi-Fi 6 (802.11ax)"), ("Wi-Fi 6E", "Wi-Fi 6E"), ("Wi-Fi 7", "Wi-Fi 7")]
_BAYS = [("2 Einschübe", "2 bays"), ("4 Einschübe", "4 bays"), ("8 Einschübe", "8 bays")]

PRODUCT_TYPES: list[tuple[str, str, str, str, tuple[float, float], tuple[float, float], list]] = [
    ("NBK", "Notebooks", "notebook", "19010405", (399, 3200), (0.9, 2.8), [_SIZE_NB, _CPU, _RAM, _DISK, _OS]),
    ("DSK", "Desktop-PCs", "desktop PC", "19010301", (349, 2500), (3.5, 12.0), [_CPU, _RAM, _DISK, _OS]),
    ("WST", "Workstations", "workstation", "19010302", (1200, 9000), (7.0, 22.0), [_CPU, _RAM, _DISK, _OS]),
    ("SRV", "Server", "server", "19010601", (1500, 18000), (12.0, 35.0), [_RAM, _DISK, [("1 HE Rack", "1U rack"), ("2 HE Rack", "2U rack"), ("Tower", "tower")]]),
    ("TAB", "Tablets", "tablet", "19070402", (149, 1800), (0.3, 0.8), [_FLASH, _COLOR, _WIFI]),
    ("SPH", "Smartphones", "smartphone", "19070501", (129, 1900), (0.15, 0.25), [_FLASH, _COLOR, [("5G", "5G"), ("4G/LTE", "4G/LTE")]]),
    ("WAT", "Smartwatches", "smartwatch", "19070590", (99, 900), (0.03, 0.07), [_COLOR, [("41 mm", "41 mm"), ("45 mm", "45 mm")]]),
    ("MON", "Monitore", "monitor", "19020401", (99, 2400), (2.5, 11.0), [_SIZE_MON, _RES, [("IPS", "IPS"), ("VA", "VA"), ("OLED", "OLED")], [("höhenverstellbar", "height adjustable"), ("USB-C 90 W", "USB-C 90 W"), ("Lautsprecher", "speakers")]]),
    ("TVS", "Fernseher", "TV", "27140101", (299, 3500), (6.0, 30.0), [_SIZE_MON, _RES]),
    ("PRJ", "Projektoren", "projector", "19020601", (399, 4500), (2.0, 8.0), [[("3.600 ANSI-Lumen", "3,600 ANSI lumens"), ("4.500 ANSI-Lumen", "4,500 ANSI lumens")], _RES]),
    ("PRN", "Drucker", "printer", "24310101", (89, 2900), (5.0, 40.0), [[("Laser, s/w", "laser, mono"), ("Laser, Farbe", "laser, colour"), ("Tinte, Farbe", "inkjet, colour")], [("Duplex", "duplex"), ("WLAN", "Wi-Fi"), ("4-in-1", "4-in-1")]]),
    ("TON", "Toner", "toner cartridge", "24350101", (39, 420), (0.4, 1.8), [_INKCOL, _PAGES]),
    ("INK", "Tintenpatronen", "ink cartridge", "24350201", (12, 140), (0.05, 0.2), [_INKCOL, [("XL", "XL"), ("Standard", "standard")]]),
    ("SCN", "Scanner", "scanner", "19020701", (89, 1800), (1.0, 9.0), [[("A4", "A4"), ("A3", "A3")], [("Duplex", "duplex"), ("600 dpi", "600 dpi")]]),
    ("LBL", "Etikettendrucker", "label printer", "24310301", (59, 1400), (0.6, 4.0), [[("203 dpi", "203 dpi"), ("300 dpi", "300 dpi")], [("USB", "USB"), ("LAN", "LAN"), ("WLAN", "Wi-Fi")]]),
    ("KBD", "Tastaturen", "keyboard", "19020101", (15, 220), (0.4, 1.3), [_LAYOUT, _CONN, _COLOR]),
    ("MOU", "Mäuse", "mouse", "19020201", (9, 160), (0.06, 0.15), [_CONN, _COLOR, [("ergonomisch", "ergonomic"), ("für Rechtshänder", "right-handed"), ("für Links- und Rechtshänder", "ambidextrous")]]),
    ("HDS", "Headsets", "headset", "19070301", (25, 450), (0.1, 0.4), [_CONN, [("Stereo", "stereo"), ("Mono", "mono")], [("ANC", "ANC"), ("Microsoft Teams zertifiziert", "Microsoft Teams certified")]]),
    ("HDP", "Kopfhörer", "headphones", "19070302", (29, 550), (0.05, 0.35), [_CONN, _COLOR]),
    ("SPK", "Lautsprecher", "speakers", "19070201", (19, 300), (0.4, 4.0), [_CONN, _COLOR]),
    ("WEB", "Webcams", "webcam", "19020801", (35, 280), (0.08, 0.3), [_RES, [("mit Mikrofon", "with microphone"), ("mit Sichtschutz", "with privacy shutter")]]),
    ("CNF", "Konferenzsysteme", "conference system", "19070801", (199, 3800), (0.5, 5.0), [[("für kleine Räume", "for small rooms"), ("für mittlere Räume", "for medium rooms")], [("4K", "4K"), ("Full HD", "Full HD")]]),
    ("CAM", "Kameras", "camera", "19070701", (299, 4200), (0.4, 1.5), [[("24 MP", "24 MP"), ("33 MP", "33 MP"), ("45 MP", "45 MP")], [("Gehäuse", "body only"), ("Kit mit Objektiv", "kit with lens")]]),
    ("RAM", "Arbeitsspeicher", "memory module", "19010901", (19, 480), (0.01, 0.05), [[("8 GB", "8 GB"), ("16 GB", "16 GB"), ("32 GB", "32 GB"), ("2 x 16 GB", "2 x 16 GB")], [("DDR4-3200", "DDR4-3200"), ("DDR5-4800", "DDR5-4800"), ("DDR5-5600", "DDR5-5600")], [("SO-DIMM", "SO-DIMM"), ("DIMM", "DIMM")]]),
    ("SSD", "SSDs", "SSD", "19011001", (29, 900), (0.01, 0.08), [_FLASH + _CAPACITY[:3], [("M.2 2280, PCIe 4.0 NVMe", "M.2 2280, PCIe 4.0 NVMe"), ('2,5" SATA', '2.5" SATA'), ("extern, USB-C", "external, USB-C")]]),
    ("HDD", "Festplatten", "hard drive", "19011002", (45, 650), (0.4, 0.75), [_CAPACITY, [('3,5" SATA, 7.200 U/min', '3.5" SATA, 7,200 rpm'), ('3,5" SATA, 5.400 U/min', '3.5" SATA, 5,400 rpm'), ('2,5" extern', '2.5" external')]]),
    ("USB", "USB-Sticks", "USB flash drive", "19011101", (6, 120), (0.005, 0.03), [_FLASH, [("USB 3.2 Gen 1", "USB 3.2 Gen 1"), ("USB-C", "USB-C")]]),
    ("MEM", "Speicherkarten", "memory card", "19011102", (6, 180), (0.002, 0.005), [_FLASH, [("microSDXC", "microSDXC"), ("SDXC", "SDXC")], [("UHS-I U3, V30", "UHS-I U3, V30"), ("mit Adapter", "with adapter")]]),
    ("CPU", "Prozessoren", "processor", "19010201", (89, 6500), (0.03, 0.2), [[("6 Kerne", "6 cores"), ("8 Kerne", "8 cores"), ("16 Kerne", "16 cores"), ("32 Kerne", "32 cores")], [("Boxed", "boxed"), ("Tray", "tray")]]),
    ("GPU", "Grafikkarten", "graphics card", "19010801", (119, 2400), (0.5, 2.3), [[("8 GB GDDR6", "8 GB GDDR6"), ("12 GB GDDR6X", "12 GB GDDR6X"), ("16 GB GDDR6", "16 GB GDDR6"), ("24 GB GDDR6X", "24 GB GDDR6X")], [("HDMI, 3x DisplayPort", "HDMI, 3x DisplayPort"), ("Dual-Slot", "dual slot")]]),
    ("MBD", "Mainboards", "motherboard", "19010101", (69, 720), (0.6, 1.6), [[("ATX", "ATX"), ("Micro-ATX", "Micro ATX"), ("Mini-ITX", "Mini ITX")], [("Sockel AM5", "socket AM5"), ("Sockel LGA1700", "socket LGA1700")]]),
    ("PSU", "Netzteile", "power supply", "19010501", (49, 320), (1.2, 2.8), [_WATT, [("80 PLUS Gold", "80 PLUS Gold"), ("80 PLUS Platinum", "80 PLUS Platinum")], [("voll modular", "fully modular"), ("teilmodular", "semi-modular")]]),
    ("CAS", "PC-Gehäuse", "PC case", "19010502", (49, 380), (4.0, 14.0), [[("Midi-Tower", "midi tower"), ("Big-Tower", "big tower"), ("Mini-Tower", "mini tower")], _COLOR, [("mit Glasfenster", "with glass window"), ("gedämmt", "sound-dampened")]]),
    ("FAN", "Lüfter", "fan", "19010503", (9, 120), (0.1, 1.2), [[("120 mm", "120 mm"), ("140 mm", "140 mm")], [("PWM", "PWM"), ("leise", "silent")]]),
    ("NAS", "NAS-Systeme", "NAS", "19011201", (199, 5200), (1.5, 12.0), [_BAYS, [("2 x 2,5 GbE", "2 x 2.5 GbE"), ("10 GbE", "10 GbE")], [("ohne Festplatten", "diskless"), ("mit 4 x 4 TB", "with 4 x 4 TB")]]),
    ("SWI", "Switches", "switch", "19170101", (25, 6500), (0.3, 6.0), [_PORTS, [("Gigabit", "Gigabit"), ("2,5 GbE", "2.5 GbE"), ("10 GbE SFP+", "10 GbE SFP+")], [("managed", "managed"), ("unmanaged", "unmanaged"), ("PoE+", "PoE+")]]),
    ("RTR", "Router", "router", "19170201", (39, 2200), (0.3, 3.0), [_WIFI, [("DSL", "DSL"), ("Kabel", "cable"), ("Glasfaser", "fibre"), ("VPN", "VPN")]]),
    ("WAP", "Access Points", "access point", "19170301", (59, 1200), (0.3, 1.2), [_WIFI, [("Deckenmontage", "ceiling mount"), ("Outdoor", "outdoor")], [("PoE", "PoE"), ("Mesh", "mesh")]]),
    ("NIC", "Netzwerkkarten", "network adapter", "19170401", (12, 650), (0.05, 0.3), [[("1 GbE", "1 GbE"), ("10 GbE", "10 GbE"), ("25 GbE SFP28", "25 GbE SFP28")], [("PCIe", "PCIe"), ("USB-C", "USB-C")]]),
    ("UPS", "USV-Anlagen", "UPS", "27040101", (79, 4200), (4.0, 45.0), [_VA, [("Line-Interactive", "line interactive"), ("Online (Doppelwandler)", "online double conversion")], [("Tower", "tower"), ("Rack/Tower", "rack/tower")]]),
    ("DOC", "Dockingstationen", "docking station", "19020901", (59, 420), (0.2, 1.0), [[("USB-C", "USB-C"), ("Thunderbolt 4", "Thunderbolt 4")], [("100 W Power Delivery", "100 W power delivery"), ("2x DisplayPort", "2x DisplayPort")]]),
    ("CBL", "Kabel", "cable", "19170501", (3, 90), (0.02, 0.4), [[("HDMI", "HDMI"), ("USB-C auf USB-C", "USB-C to USB-C"), ("Cat.6a S/FTP", "Cat.6a S/FTP"), ("DisplayPort", "DisplayPort")], _LEN, _COLOR]),
    ("ADP", "Adapter", "adapter", "19170502", (4, 70), (0.01, 0.15), [[("USB-C auf HDMI", "USB-C to HDMI"), ("DisplayPort auf DVI", "DisplayPort to DVI"), ("USB-A auf Ethernet", "USB-A to Ethernet")], _COLOR]),
    ("CHG", "Ladegeräte", "charger", "27040301", (12, 120), (0.05, 0.4), [[("30 W", "30 W"), ("65 W", "65 W"), ("100 W", "100 W")], [("GaN", "GaN"), ("2 Anschlüsse", "2 ports")]]),
    ("BAG", "Taschen & Rucksäcke", "bag", "19021001", (15, 180), (0.4, 1.6), [[('für Notebooks bis 39,6 cm (15.6")', 'for notebooks up to 15.6"'), ('für Notebooks bis 35,6 cm (14")', 'for notebooks up to 14"')], _COLOR]),
    ("LCK", "Sicherheitsschlösser", "security lock", "19021101", (15, 90), (0.08, 0.3), [[("Schlüssel", "keyed"), ("Zahlenschloss", "combination")], [("1,8 m", "1.8 m"), ("für Nano-Slot", "for nano slot")]]),
    ("SWS", "Sicherheitssoftware", "security software", "19110101", (19, 900), (0.0, 0.05), [_USERS, [("ESD (Download)", "ESD (download)"), ("Box", "box")]]),
    ("SWO", "Office-Software", "office software", "19110201", (69, 650), (0.0, 0.05), [_USERS, [("ESD (Download)", "ESD (download)"), ("Box", "box")]]),
]

# name, short SKU prefix, partner
SUPPLIERS: list[tuple[str, str, bool]] = [
    ("Nordwind Distribution GmbH", "NW", True),
    ("Rhein-Main IT-Großhandel GmbH", "RM", True),
    ("Alpenland Computer AG", "AL", False),
    ("Hanse Komponenten GmbH & Co. KG", "HK", True),
    ("Elbtal Systemhaus Distribution", "ET", False),
    ("Bavaria Tech Supply GmbH", "BT", False),
    ("Westfalen Data GmbH", "WD", True),
    ("Spree Digital Distribution", "SD", False),
    ("Schwarzwald IT-Versand GmbH", "SW", False),
    ("Bodensee Netzwerktechnik KG", "BN", False),
    ("Ostsee Office Supply", "OO", False),
    ("Pfälzer Peripherie GmbH", "PP", False),
]

# Phrases for the long descriptions: {noun} / {mfr} / {series} are filled in.
LONG_INTRO_DE = [
    'Das {series} von {mfr} ist für den täglichen Einsatz im Büro gemacht – zuverlässig, leise und sparsam.',
    "Mit dem {series} bietet {mfr} ein ausgewogenes Verhältnis von Leistung, Preis und Ausstattung.",
    'Der Hersteller beschreibt das Gerät als "Arbeitstier für Profis"; die Verarbeitung ist hochwertig.',
    "Für Unternehmen, Behörden und Schulen: robust, wartungsfreundlich und mit langer Verfügbarkeit.",
    "Kompakt, leicht und schnell einsatzbereit, ideal für Homeoffice, Großraumbüro und unterwegs.",
]
LONG_INTRO_EN = [
    "The {series} by {mfr} is built for everyday office use: reliable, quiet and efficient.",
    "With the {series}, {mfr} offers a balanced mix of performance, price and features.",
    'The manufacturer calls it a "workhorse for professionals"; build quality is high.',
    "For businesses, public authorities and schools: rugged, easy to service and available for years.",
    "Compact, light and quickly set up, ideal for home office, open-plan office and travel.",
]
LONG_EXTRA_DE = [
    "Lieferumfang: Gerät, Netzteil, Kurzanleitung",
    "Garantie: 3 Jahre Vor-Ort-Service (nächster Arbeitstag)",
    "Hinweis: Abbildung ähnlich, Farbe kann abweichen",
    'Energieeffizienzklasse: "E" (Skala A bis G)',
    "Maße (B x T x H): siehe Datenblatt",
]
LONG_EXTRA_EN = [
    "In the box: device, power supply, quick start guide",
    "Warranty: 3 years on-site service (next business day)",
    "Note: image similar, colour may differ",
    'Energy efficiency class: "E" (scale A to G)',
    "Dimensions (W x D x H): see data sheet",
]

#: Singular German nouns for product names (the type names above are plural).
NOUN_DE = {
    "NBK": "Notebook", "DSK": "Desktop-PC", "WST": "Workstation", "SRV": "Server", "TAB": "Tablet",
    "SPH": "Smartphone", "WAT": "Smartwatch", "MON": "Monitor", "TVS": "Fernseher",
    "PRJ": "Projektor", "PRN": "Drucker", "TON": "Tonerkartusche", "INK": "Tintenpatrone",
    "SCN": "Scanner", "LBL": "Etikettendrucker", "KBD": "Tastatur", "MOU": "Maus",
    "HDS": "Headset", "HDP": "Kopfhörer", "SPK": "Lautsprecher", "WEB": "Webcam",
    "CNF": "Konferenzsystem", "CAM": "Kamera", "RAM": "Arbeitsspeicher", "SSD": "SSD",
    "HDD": "Festplatte", "USB": "USB-Stick", "MEM": "Speicherkarte", "CPU": "Prozessor",
    "GPU": "Grafikkarte", "MBD": "Mainboard", "PSU": "Netzteil", "CAS": "PC-Gehäuse",
    "FAN": "Lüfter", "NAS": "NAS", "SWI": "Switch", "RTR": "Router", "WAP": "Access Point",
    "NIC": "Netzwerkkarte", "UPS": "USV", "DOC": "Dockingstation", "CBL": "Kabel",
    "ADP": "Adapter", "CHG": "Ladegerät", "BAG": "Tasche", "LCK": "Kabelschloss",
    "SWS": "Sicherheitssoftware", "SWO": "Office-Software",
}

#: How a manufacturer's name appears in product names when it differs from the company name.
BRAND = {
    "HP Inc.": "HP", "Dell Technologies": "Dell", "Kingston Technology": "Kingston", "ASUSTeK": "ASUS",
    "Cisco Systems": "Cisco", "APC by Schneider Electric": "APC", "LG Electronics": "LG",
    "HP Poly": "Poly", "Zebra Technologies": "Zebra",
}
