"""Static vocabulary of the demo city: places, code lists, document numbers and word pools.

The demo city is Shenzhen (深圳市, Guangdong; region code 440300, the default of
``GOVSHARE_REGION_CODE``): its nine districts give the region codes of resident IDs and
credit codes, the nine district governments of the city scale, and the addresses. Like the
real city, most residents were born elsewhere, so most IDs carry another region's code.
Everything that names the city lives here, so another city is a change to this module only.

Code lists follow the national standards where one exists (GB/T 2261.1 sex, GB 3304
ethnicities, GB/T 4754-2017 industry sections, ICD-10), using the Chinese labels that clerks
see rather than numeric codes, so previews read naturally.
"""

from __future__ import annotations

from typing import NamedTuple

CITY = "深圳市"
CITY_BARE = "深圳"
CITY_EN = "Shenzhen"
PROVINCE = "广东省"
PROVINCE_SHORT = "粤"
PLATE_PREFIX = "粤B"
AREA_CODE = "0755"
CITY_REGION_CODE = 440300
REGION_PREFIX = "4403"  # how the city's own region codes begin
# Bounding box of the city, for generated coordinates (WGS 84).
LON_RANGE = (113.76, 114.55)
LAT_RANGE = (22.45, 22.82)
# Share of residents whose ID carries another region's code (born elsewhere).
MIGRANT_SHARE = 0.6


class District(NamedTuple):
    code: int  # GB/T 2260 code as used today
    name: str
    name_en: str
    dept_code: str  # the district government's department code (city scale)
    weight: float  # share of the population living there
    streets: tuple[str, ...]  # real roads, for addresses


DISTRICTS: tuple[District, ...] = (
    District(440304, "福田区", "Futian District", "FTQ", 0.09,
             ("深南中路", "福华路", "益田路", "彩田路", "金田路", "福中路", "红荔路", "莲花路",
              "华强北路", "滨河大道")),
    District(440303, "罗湖区", "Luohu District", "LHQ", 0.06,
             ("人民南路", "东门中路", "深南东路", "宝安南路", "解放路", "春风路", "翠竹路",
              "黄贝路", "爱国路", "沿河北路")),
    District(440305, "南山区", "Nanshan District", "NSQ", 0.1,
             ("科苑路", "南海大道", "后海大道", "学府路", "南山大道", "沙河西路", "高新南一道",
              "创业路", "望海路", "工业八路")),
    District(440306, "宝安区", "Bao'an District", "BAQ", 0.25,
             ("宝安大道", "新安六路", "创业一路", "建安一路", "航城大道", "沙井路", "松岗大道",
              "福永大道", "西乡大道", "兴华路")),
    District(440307, "龙岗区", "Longgang District", "LGQ", 0.22,
             ("龙岗大道", "龙翔大道", "布吉路", "深惠路", "五和大道", "横岗大道", "平湖大街",
              "吉华路", "爱联路", "清林路")),
    District(440308, "盐田区", "Yantian District", "YTQ", 0.015,
             ("深盐路", "海山路", "盐田路", "梧桐路", "东海道", "北山道")),
    District(440309, "龙华区", "Longhua District", "LHUQ", 0.15,
             ("人民路", "梅龙大道", "民治大道", "龙华大道", "观澜大道", "和平路", "东环二路",
              "布龙路")),
    District(440310, "坪山区", "Pingshan District", "PSQ", 0.03,
             ("坪山大道", "深汕路", "东纵路", "丹梓大道", "金牛路", "锦绣中路")),
    District(440311, "光明区", "Guangming District", "GMQ", 0.06,
             ("光明大道", "华夏路", "公常路", "东明大道", "观光路", "光侨路")),
)

# Birth-place region codes for resident IDs: the city's own (including the codes of divisions
# renamed or split since 1983, valid for people born before the change) and, for migrants,
# places elsewhere in Guangdong and in the provinces most Shenzhen residents come from. Which
# code is possible for a given birth year is taken from python-stdnum's copy of the GB/T 2260
# history (see ``ids.region_valid_years``).
BIRTH_REGIONS_LOCAL: tuple[int, ...] = (
    440300, 440301, 440303, 440304, 440305, 440306, 440307, 440308, 440309, 440310, 440311,
    440320, 440321,
)
# Former codes take their successors' share of births (440320 the pre-1983 city proper).
FORMER_REGIONS: dict[int, int] = {440300: 440304, 440301: 440303, 440320: 440303,
                                  440321: 440306}
BIRTH_REGIONS_MIGRANT: tuple[int, ...] = (
    440106, 441302, 445102, 445202, 440513, 441402, 441881, 440783, 441781, 430102, 430521,
    431121, 421023, 420106, 450102, 360102, 362101, 511002, 510104, 410102, 411502, 500103,
    110105, 320102, 330106,
    # Counties whose codes go back before 1983, for migrants born in the 1930s-70s.
    440221, 430121, 430321, 433123, 422822, 429001, 452122, 360121, 362201, 362321,
)

# Mobile number segments in use by the three carriers and virtual operators.
MOBILE_PREFIXES: tuple[int, ...] = (
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 145, 147, 150, 151, 152, 153, 155, 156,
    157, 158, 159, 166, 170, 171, 173, 175, 176, 177, 178, 180, 181, 182, 183, 184, 185, 186,
    187, 188, 189, 191, 193, 195, 198, 199,
)

GENDERS = ("男", "女")

# GB 3304 ethnic groups, with the Han majority and the groups most present in Hunan first.
ETHNICITIES: tuple[str, ...] = (
    "汉族", "土家族", "苗族", "侗族", "瑶族", "回族", "白族", "壮族", "维吾尔族", "满族", "蒙古族",
    "藏族", "彝族", "布依族", "朝鲜族", "哈尼族", "哈萨克族", "傣族", "黎族", "傈僳族", "佤族",
    "畲族", "高山族", "拉祜族", "水族", "东乡族", "纳西族", "景颇族", "柯尔克孜族", "土族",
    "达斡尔族", "仫佬族", "羌族", "布朗族", "撒拉族", "毛南族", "仡佬族", "锡伯族", "阿昌族",
    "普米族", "塔吉克族", "怒族", "乌孜别克族", "俄罗斯族", "鄂温克族", "德昂族", "保安族",
    "裕固族", "京族", "塔塔尔族", "独龙族", "鄂伦春族", "赫哲族", "门巴族", "珞巴族", "基诺族",
)
ETHNICITY_WEIGHTS: tuple[float, ...] = (0.895, 0.04, 0.025, 0.012, 0.01, 0.005, 0.003) + (
    0.01 / 49,) * 49

MARITAL_STATUSES = ("未婚", "已婚", "离婚", "丧偶")
EDUCATION_LEVELS = ("研究生", "大学本科", "大学专科", "中等职业教育", "普通高中", "初中", "小学",
                    "未上过学")
EDUCATION_WEIGHTS = (0.03, 0.16, 0.14, 0.08, 0.14, 0.28, 0.15, 0.02)
HOUSEHOLD_TYPES = ("家庭户", "集体户")
HOUSEHOLD_RELATIONS = ("户主", "配偶", "子", "女", "父母", "孙子女", "兄弟姐妹", "其他")

# GB/T 4754-2017 industry sections, with a typical business word for company names.
INDUSTRIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("A", "农、林、牧、渔业", ("农业科技", "生态农业", "养殖", "种植专业")),
    ("C", "制造业", ("机械制造", "新材料", "电子科技", "食品", "工程机械", "生物医药")),
    ("D", "电力、热力、燃气及水生产和供应业", ("新能源", "电力工程", "燃气")),
    ("E", "建筑业", ("建筑工程", "建设工程", "装饰工程", "市政工程", "劳务")),
    ("F", "批发和零售业", ("商贸", "贸易", "百货", "医药连锁", "汽车销售", "超市")),
    ("G", "交通运输、仓储和邮政业", ("物流", "运输", "供应链管理", "快递")),
    ("H", "住宿和餐饮业", ("餐饮管理", "酒店管理", "食品餐饮", "茶饮")),
    ("I", "信息传输、软件和信息技术服务业", ("信息技术", "软件", "网络科技", "数据科技")),
    ("J", "金融业", ("融资担保", "投资管理")),
    ("K", "房地产业", ("房地产开发", "物业管理", "置业")),
    ("L", "租赁和商务服务业", ("企业管理咨询", "广告传媒", "人力资源", "会展服务")),
    ("M", "科学研究和技术服务业", ("检测技术", "工程设计", "环保科技")),
    ("N", "水利、环境和公共设施管理业", ("环境工程", "园林绿化")),
    ("O", "居民服务、修理和其他服务业", ("家政服务", "汽车维修", "美容美发")),
    ("P", "教育", ("教育咨询", "职业技能培训")),
    ("Q", "卫生和社会工作", ("健康管理", "养老服务", "医疗器械")),
    ("R", "文化、体育和娱乐业", ("文化传播", "体育发展", "影视传媒")),
)
INDUSTRY_WEIGHTS = (0.03, 0.12, 0.01, 0.1, 0.27, 0.05, 0.07, 0.08, 0.01, 0.03, 0.1, 0.04,
                    0.01, 0.03, 0.02, 0.02, 0.01)
INDUSTRY_LABELS: tuple[str, ...] = tuple(f"{code} {label}" for code, label, _ in INDUSTRIES)

# Trade-name syllables (字号): combined in pairs, plus Faker's zh_CN company prefixes.
TRADE_SYLLABLES = tuple("华盛鑫达恒通瑞兴宏泰丰源嘉诚信远德利安和创博凯隆鼎昌祥汇正中新金天云星"
                        "鹏粤港湾海宇腾飞扬锦辉耀弘毅晟")
COMPANY_FORMS = ("有限公司", "有限责任公司", "股份有限公司")
COMPANY_FORM_WEIGHTS = (0.8, 0.15, 0.05)
COMPANY_PLACE_PREFIXES = (CITY_BARE, PROVINCE[:2], CITY)
ENTERPRISE_TYPES = ("有限责任公司（自然人投资或控股）", "有限责任公司（自然人独资）",
                    "有限责任公司（国有独资）", "股份有限公司（非上市、自然人投资或控股）",
                    "个人独资企业", "普通合伙企业", "有限责任公司（外商投资、非独资）",
                    "农民专业合作社")
ENTERPRISE_TYPE_WEIGHTS = (0.62, 0.2, 0.02, 0.04, 0.05, 0.03, 0.02, 0.02)
ENTERPRISE_STATUSES = ("存续", "在业", "吊销", "注销", "迁出")
ENTERPRISE_STATUS_WEIGHTS = (0.72, 0.13, 0.05, 0.09, 0.01)

COMMUNITY_PREFIXES = ("锦绣", "翡翠", "阳光", "金色", "万科", "华润", "招商", "碧桂园", "星河",
                      "中海", "金地", "卓越", "佳兆业", "龙光", "世纪", "东方", "海滨", "翠湖",
                      "桃源", "莲花", "梅林", "香蜜", "蛇口", "西丽", "前海", "红树湾", "天健",
                      "鸿荣源", "京基", "幸福")
COMMUNITY_SUFFIXES = ("花园", "家园", "华庭", "公馆", "新城", "公寓", "雅居", "名苑", "城",
                      "社区")

HOSPITALS = ("北京大学深圳医院", "香港大学深圳医院", "深圳市人民医院", "深圳市第二人民医院",
             "深圳市中医院", "深圳市儿童医院", "深圳市妇幼保健院", "深圳市第三人民医院",
             "南方科技大学医院", "中山大学附属第七医院", "深圳市宝安区人民医院",
             "深圳市龙岗中心医院", "深圳市龙华区人民医院", "深圳市南山区人民医院",
             "深圳市罗湖区人民医院", "深圳市福田区第二人民医院", "深圳市光明区人民医院",
             "深圳市坪山区人民医院", "福田区华富街道社区健康服务中心",
             "宝安区新安街道社区健康服务中心")
HOSPITAL_WEIGHTS = (0.12, 0.1, 0.06, 0.1, 0.04, 0.05, 0.06, 0.07, 0.05, 0.04, 0.04, 0.06,
                    0.04, 0.04, 0.04, 0.03, 0.02, 0.02, 0.02, 0.01)
CLINICAL_DEPARTMENTS = ("内科", "外科", "妇产科", "儿科", "眼科", "耳鼻咽喉科", "口腔科",
                        "皮肤科", "急诊科", "中医科", "康复医学科", "感染科")
VISIT_TYPES = ("门诊", "急诊", "住院")

# ICD-10 codes with their Chinese names: common outpatient diagnoses first.
DIAGNOSES: tuple[tuple[str, str], ...] = (
    ("J06.9", "急性上呼吸道感染"), ("I10", "特发性（原发性）高血压"),
    ("E11.9", "2型糖尿病，不伴有并发症"), ("K29.7", "胃炎"), ("J20.9", "急性支气管炎"),
    ("M54.5", "腰痛"), ("J18.9", "肺炎"), ("K21.9", "胃食管反流病"), ("N39.0", "泌尿道感染"),
    ("I25.1", "动脉硬化性心脏病"), ("E78.5", "高脂血症"), ("L30.9", "皮炎"),
    ("H10.9", "结膜炎"), ("K02.9", "龋病"), ("J45.9", "哮喘"), ("M17.9", "膝关节病"),
    ("I63.9", "脑梗死"), ("F32.9", "抑郁发作"), ("O80.9", "单胎顺产"),
    ("C34.9", "支气管或肺恶性肿瘤"),
    ("B18.1", "慢性乙型病毒性肝炎"), ("S52.5", "桡骨下端骨折"), ("K80.2", "胆囊结石"),
    ("N18.9", "慢性肾脏病"), ("A09.9", "胃肠炎和结肠炎"),
)
DIAGNOSIS_WEIGHTS = (0.16, 0.1, 0.07, 0.07, 0.06, 0.05, 0.04, 0.04, 0.04, 0.04, 0.04, 0.03,
                     0.03, 0.03, 0.03, 0.03, 0.02, 0.02, 0.02, 0.01, 0.02, 0.02, 0.01, 0.01, 0.01)
CAUSES_OF_DEATH: tuple[tuple[str, str], ...] = (
    ("I21.9", "急性心肌梗死"), ("I63.9", "脑梗死"), ("I61.9", "脑出血"), ("C34.9", "肺恶性肿瘤"),
    ("C22.0", "肝细胞癌"), ("C16.9", "胃恶性肿瘤"), ("J44.9", "慢性阻塞性肺病"),
    ("J18.9", "肺炎"), ("E11.9", "2型糖尿病"), ("N18.9", "慢性肾脏病"), ("V89.2", "道路交通事故"),
    ("W19", "跌倒"), ("R54", "衰老"),
)

VACCINES: tuple[tuple[str, str, int], ...] = (  # name, manufacturer, doses in the schedule
    ("乙肝疫苗", "深圳康泰生物制品股份有限公司", 3),
    ("卡介苗", "上海生物制品研究所有限责任公司", 1),
    ("脊灰灭活疫苗", "中国医学科学院医学生物学研究所", 2),
    ("二价脊灰减毒活疫苗", "北京生物制品研究所有限责任公司", 2),
    ("百白破疫苗", "武汉生物制品研究所有限责任公司", 4),
    ("麻腮风疫苗", "上海生物制品研究所有限责任公司", 2),
    ("乙脑减毒活疫苗", "成都生物制品研究所有限责任公司", 2),
    ("A群流脑多糖疫苗", "兰州生物制品研究所有限责任公司", 2),
    ("甲肝减毒活疫苗", "长春生物制品研究所有限责任公司", 1),
    ("水痘减毒活疫苗", "长春祈健生物制品有限公司", 2),
)
VACCINATION_CLINICS = tuple(f"{d.name}{s}预防接种门诊" for d in DISTRICTS
                            for s in ("妇幼保健院", "社区健康服务中心"))

SOCIAL_INSURANCE_TYPES = ("企业职工基本养老保险", "城乡居民基本养老保险", "机关事业单位养老保险",
                          "失业保险", "工伤保险")
MEDICAL_INSURANCE_TYPES = ("职工基本医疗保险", "城乡居民基本医疗保险")
MEDICAL_INSURED_CATEGORIES = ("在职职工", "退休人员", "灵活就业人员", "城乡居民", "学生儿童")
PENSION_TYPES = ("企业职工基本养老金", "城乡居民基础养老金", "机关事业单位养老金")
BANKS: tuple[tuple[str, str], ...] = (  # bank, six-digit card BIN (illustrative)
    ("中国工商银行", "622202"), ("中国农业银行", "622848"), ("中国银行", "621660"),
    ("中国建设银行", "621700"), ("交通银行", "622262"), ("中国邮政储蓄银行", "621799"),
    ("平安银行", "622298"), ("深圳农村商业银行", "623035"),
)

VEHICLE_TYPES = ("小型轿车", "小型普通客车", "小型越野客车", "中型普通客车", "轻型普通货车",
                 "重型半挂牵引车", "普通二轮摩托车")
VEHICLE_TYPE_WEIGHTS = (0.55, 0.25, 0.06, 0.02, 0.07, 0.02, 0.03)
VEHICLE_BRANDS: tuple[tuple[str, str], ...] = (  # brand, World Manufacturer Identifier
    ("比亚迪", "LGX"), ("一汽-大众", "LFV"), ("上汽大众", "LSV"), ("广汽丰田", "LVG"),
    ("吉利", "L6T"), ("长安", "LS5"), ("特斯拉", "LRW"), ("东风本田", "LVH"),
    ("上汽通用五菱", "LZW"),
    ("广汽传祺", "LMG"), ("长城", "LGW"), ("东风日产", "LGB"),
)
VEHICLE_COLOURS = ("白", "黑", "灰", "银", "蓝", "红")
FUEL_TYPES = ("汽油", "纯电动", "插电式混合动力", "柴油")
FUEL_WEIGHTS = (0.68, 0.2, 0.08, 0.04)
VEHICLE_STATUSES = ("正常", "抵押", "违法未处理", "逾期未检验", "注销")
DRIVING_CLASSES = ("C1", "C2", "B1", "B2", "A1", "A2", "D", "E")
DRIVING_CLASS_WEIGHTS = (0.78, 0.1, 0.02, 0.04, 0.01, 0.01, 0.03, 0.01)
LICENCE_STATUSES = ("正常", "超分", "逾期未换证", "吊销", "注销")
LICENCE_STATUS_WEIGHTS = (0.93, 0.01, 0.03, 0.01, 0.02)

SCHOOL_TYPES = ("幼儿园", "小学", "初级中学", "高级中学", "完全中学", "九年一贯制学校",
                "中等职业学校")
SCHOOL_TYPE_WEIGHTS = (0.45, 0.3, 0.1, 0.04, 0.03, 0.05, 0.03)
GRADES = ("一年级", "二年级", "三年级", "四年级", "五年级", "六年级", "七年级", "八年级", "九年级",
          "高一", "高二", "高三")
OCCUPATIONS = ("电工", "焊工", "育婴员", "保育员", "中式烹调师", "美容师", "汽车维修工",
               "企业人力资源管理师", "健康管理师", "养老护理员", "电子商务师", "家政服务员")
SKILL_LEVELS = ("五级/初级工", "四级/中级工", "三级/高级工", "二级/技师", "一级/高级技师")
LAND_USES = ("城镇住宅用地", "商业服务业用地", "工业用地", "仓储用地", "公共管理与公共服务用地",
             "交通运输用地", "农村宅基地")
PROPERTY_USES = ("住宅", "商业", "办公", "工业", "车位")
PROPERTY_USE_WEIGHTS = (0.78, 0.07, 0.05, 0.03, 0.07)
TAX_AUTHORITY_SUFFIX = "税务局"
TAXPAYER_TYPES = ("一般纳税人", "小规模纳税人")
INVOICE_TYPES = ("增值税专用发票", "增值税普通发票", "电子发票（普通发票）")
TAX_CREDIT_GRADES = ("A", "B", "M", "C", "D")
TAX_CREDIT_WEIGHTS = (0.25, 0.4, 0.25, 0.07, 0.03)
HOTLINE_CHANNELS = ("电话", "网站", "微信", "APP", "短信")
HOTLINE_CATEGORIES = ("城乡建设", "交通运输", "市场监管", "劳动保障", "教育", "卫生健康",
                      "生态环境", "住房保障", "城市管理", "公共安全")
# Typical requests, each with the category it is filed under (an index into the above).
HOTLINE_ISSUES: tuple[tuple[str, int], ...] = (
    ("小区噪音扰民", 6), ("道路积水", 0), ("拖欠工资", 3), ("物业收费纠纷", 7),
    ("公交线路调整建议", 1), ("餐馆油烟污染", 6), ("学位申请咨询", 4), ("医保报销咨询", 5),
    ("违章建筑", 8), ("占道经营", 8), ("路灯不亮", 0), ("商品质量投诉", 2), ("停车难", 1),
    ("供水停水", 0), ("燃气安全隐患", 9),
)
# Document numbers and the offices that issue them.
MARKET_PENALTY_PREFIX = "深市监罚"
TRANSPORT_PENALTY_PREFIX = "深交执罚"
PRESALE_PERMIT_PREFIX = "深房许字"
PROPERTY_TITLE = f"{PROVINCE_SHORT}（{{year}}）{CITY}不动产权第"
TRANSPORT_LICENCE_PREFIX = f"{PROVINCE_SHORT}交运管许可深字"
FUNERAL_HOMES = ("深圳市殡仪馆", "宝安区殡仪馆", "龙岗区殡仪馆")
FUNERAL_HOME_WEIGHTS = (0.5, 0.25, 0.25)
SKILL_ASSESSORS = ("深圳市职业技能鉴定中心", "广东省职业技能鉴定指导中心", "深圳职业技术大学",
                   "深圳技师学院", "深圳信息职业技术学院", "深圳市家庭服务业协会")
ORG_FIELDS = ("餐饮", "软件", "物流", "建筑", "律师", "会计", "书法", "摄影", "足球", "围棋",
              "志愿者", "青年企业家", "粤菜", "粤剧", "电子商务", "无人机", "跨境电商")
SCHOOL_STEMS = ("荔园", "百花", "红岭", "翠园", "外国语", "实验", "育才", "蛇口", "南头", "西丽",
                "新安", "布吉", "观澜", "莲花", "梅林", "园岭", "螺岭", "东湖", "翠竹", "华富",
                "景秀", "松坪", "桃源", "海滨", "滨河", "碧海", "石岩", "明德", "星河", "科华",
                "高峰", "向西", "侨香", "新沙")
SERVICE_ITEMS = ("企业设立登记", "个体工商户登记", "社会保障卡申领", "城乡居民医保参保登记",
                 "公积金提取", "不动产转移登记", "出生医学证明补发", "婚姻登记预约",
                 "居住证签注", "道路运输从业资格证换证", "食品经营许可", "建筑工程施工许可")
SUBSISTENCE_STANDARD = 1365.0  # yuan per person and month
HOUSE_PRICE_MEDIAN = 55_000.0  # yuan per square metre, new homes
SUBSISTENCE_TYPES = ("城市低保", "农村低保")
DISABILITY_TYPES = ("视力残疾", "听力残疾", "言语残疾", "肢体残疾", "智力残疾", "精神残疾",
                    "多重残疾")
DISABILITY_LEVELS = ("一级", "二级", "三级", "四级")
OFFENCES = ("盗窃", "诈骗", "故意伤害", "寻衅滋事", "危险驾驶", "赌博", "吸毒", "抢劫")
DISPOSITIONS = ("行政拘留", "刑事拘留", "取保候审", "逮捕", "判处有期徒刑", "罚款")
VIOLATIONS = ("销售不合格产品", "虚假宣传", "未按规定公示年报信息", "无证经营", "价格违法",
              "食品安全违法", "商标侵权", "计量违法")
PENALTY_TYPES = ("警告", "罚款", "没收违法所得", "责令停产停业", "吊销许可证件")
FOOD_BUSINESS_ITEMS = ("预包装食品销售", "散装食品销售", "热食类食品制售", "冷食类食品制售",
                       "糕点类食品制售", "自制饮品制售")
TRANSPORT_SCOPES = ("道路普通货物运输", "道路旅客运输", "危险货物运输", "机动车维修经营",
                    "道路运输站（场）经营")
RIDE_HAILING_PLATFORMS = ("滴滴出行科技有限公司", "高德打车（北京）科技有限公司",
                          "曹操出行有限公司",
                          "享道出行（上海）科技有限公司", "T3出行（南京）科技有限公司")
