"""The city scale: 62 municipal departments, 9 district governments and 2,271 resources.

2,271 is the number of catalogued resources one city reported for its sharing platform; the
shape of such a catalogue is what this reproduces. The default world's 53 resources are kept
(with fewer rows); the rest come from templates: every department publishes the resources
all departments keep (licences, penalties, service cases, statistics…) plus its own subjects,
and every district government the same set of district subjects. Each template is a *shape*
(licence, roster, facility…) with a fixed set of items and a generator, filled in with the
subject's words, so 2,218 resources need nine generators.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from catalog.models import Category, SecurityLevel, Sensitivity, SharingType, UpdateCycle
from catalog.schemas import DataItemIn, ResourceIn
from govshare_demo import ids, pools, vocab
from govshare_demo.generate import Columns, GenContext, generator
from govshare_demo.generators import YEAR, add_years, dates, null_where, years_of
from govshare_demo.pools import join, numbers
from govshare_demo.spec import (
    DEC,
    DT,
    D,
    Defect,
    DefectKind,
    DepartmentSpec,
    FileFormat,
    ResourceSpec,
    WorldSpec,
    address,
    amount,
    bank_card,
    birth_date,
    code,
    district,
    gender,
    item,
    mobile,
    org_name,
    person_name,
    resident_id,
    uscc,
)
from govshare_demo.world import DEFAULT, DEPARTMENTS, default_resources
from kernel.identity import AdminLevel, DepartmentKind, Role

TOTAL_RESOURCES = 2271
MUNICIPAL_DEPARTMENTS = 62
DISTRICT_RESOURCES = 80  # per district government
ROWS_RANGE = (200, 5000)
POPULATION_SIZE = 60_000
ENTERPRISE_SIZE = 20_000


class Subject(NamedTuple):
    zh: str
    en: str
    shape: str
    category: Category | None = None  # None: the department's


class CityDepartment(NamedTuple):
    code: str
    name_zh: str  # after the city's name, unless it places {city} or {bare} itself
    name_en: str  # after the city's English name, unless it places {city_en}
    domain: str  # prefix of its generic resources, e.g. 生态环境行政处罚决定信息
    category: Category
    weight: float  # relative number of resources
    subjects: tuple[Subject, ...] = ()


S = Subject
C = Category
# Resources every department keeps: the "power list" (权责清单) and its disclosures.
GENERIC: tuple[Subject, ...] = (
    S("行政许可", "administrative licences", "licence"),
    S("行政处罚", "administrative penalties", "penalty", C.credit),
    S("政务服务事项", "government service cases", "case"),
    S("执法人员", "law enforcement officers", "roster"),
    S("专项资金", "special funds", "project"),
    S("业务统计", "statistics", "statistics", C.macro_economy),
)

DEPARTMENTS_CITY: tuple[CityDepartment, ...] = (
    CityDepartment("ZFB", "人民政府办公厅", "General Office of the Municipal Government",
                   "政府办公", C.departmental, 0.6, (
                       S("政府文件", "government documents", "entity"),
                       S("督查督办事项", "supervised matters", "case"))),
    CityDepartment("GA", "公安局", "Public Security Bureau", "公安", C.population, 2.0, (
        S("户口迁移", "household registration transfers", "roster"),
        S("保安员证", "security guard permits", "licence", C.e_license),
        S("旅馆业治安", "hotel security", "facility"),
        S("犬只登记", "dog registration", "roster"),
        S("交通违法", "traffic violations", "penalty", C.transport))),
    CityDepartment("SCJG", "市场监督管理局", "Administration for Market Regulation", "市场监管",
                   C.market, 1.8, (S("特种设备", "special equipment", "facility"),
                                   S("食品抽检", "food sampling", "statistics"),
                                   S("经营异常名录", "abnormal operations list", "entity",
                                     C.credit),
                                   S("计量器具", "measuring instruments", "facility"))),
    CityDepartment("RSJ", "人力资源和社会保障局", "Human Resources and Social Security Bureau",
                   "人力社保", C.social_security, 1.8, (
                       S("就业创业补贴", "employment subsidies", "subsidy"),
                       S("职称评审", "professional title evaluation", "roster"),
                       S("劳动保障监察", "labour inspection", "penalty"),
                       S("人力资源服务机构", "HR service agencies", "entity"))),
    CityDepartment("MZJ", "民政局", "Civil Affairs Bureau", "民政", C.civil_affairs, 1.5, (
        S("临时救助", "temporary assistance", "subsidy"),
        S("特困人员供养", "support for persons in extreme poverty", "subsidy"),
        S("地名", "place names", "facility", C.natural_resources),
        S("社区服务设施", "community service facilities", "facility"))),
    CityDepartment("WJW", "卫生健康委员会", "Health Commission", "卫生健康", C.health, 1.8, (
        S("护士执业注册", "nurse registration", "roster"),
        S("公共场所卫生许可", "public place hygiene permits", "licence"),
        S("母婴保健技术服务", "maternal and infant health services", "licence"),
        S("传染病报告", "infectious disease reports", "statistics"))),
    CityDepartment("SWJ", "税务局", "Municipal Tax Service", "税务", C.tax, 1.4, (
        S("发票领用", "invoice issuance", "case"),
        S("税收收入", "tax revenue", "statistics", C.macro_economy),
        S("出口退税", "export tax rebates", "project"))),
    CityDepartment("JYJ", "教育局", "Education Bureau", "教育", C.education, 1.5, (
        S("学生资助", "student financial aid", "subsidy"),
        S("校车", "school buses", "facility"),
        S("民办学校", "private schools", "entity"),
        S("教育经费", "education funding", "statistics"))),
    CityDepartment("ZJJ", "住房和城乡建设局", "Housing and Urban-Rural Development Bureau",
                   "住房城乡建设", C.housing, 1.6, (
                       S("施工许可", "construction permits", "licence"),
                       S("公租房保障", "public rental housing", "subsidy"),
                       S("物业服务企业", "property management companies", "entity"),
                       S("房屋安全鉴定", "building safety appraisals", "facility"))),
    CityDepartment("ZRZYJ", "自然资源和规划局", "Natural Resources and Planning Bureau", "自然资源",
                   C.natural_resources, 1.5, (
                       S("土地出让", "land transfers", "project"),
                       S("矿业权", "mining rights", "licence"),
                       S("地质灾害隐患点", "geological hazard sites", "facility"),
                       S("测绘资质", "surveying qualifications", "entity"))),
    CityDepartment("JTJ", "交通运输局", "Transport Bureau", "交通运输", C.transport, 1.4, (
        S("公交线路", "bus routes", "facility"),
        S("出租汽车", "taxis", "licence"),
        S("道路运输从业人员", "road transport workers", "roster"),
        S("公路桥梁", "roads and bridges", "facility"))),
    CityDepartment("YBJ", "医疗保障局", "Healthcare Security Administration", "医疗保障",
                   C.social_security, 1.2, (
                       S("医疗救助", "medical assistance", "subsidy"),
                       S("异地就医备案", "out-of-area treatment filings", "case"),
                       S("医药价格", "drug prices", "statistics", C.health))),
    CityDepartment("SJJ", "政务服务和数据管理局", "Government Services and Data Administration",
                   "政务数据", C.departmental, 1.2, (
                       S("电子证照", "electronic licences", "entity", C.e_license),
                       S("政务服务好差评", "service ratings", "case"),
                       S("数据共享申请", "data sharing requests", "case"))),
    CityDepartment("FGW", "发展和改革委员会", "Development and Reform Commission", "发展改革",
                   C.macro_economy, 1.3, (S("固定资产投资项目", "fixed-asset investment projects",
                                           "project"),
                                         S("价格监测", "price monitoring", "statistics"),
                                         S("信用修复", "credit repair", "entity", C.credit))),
    CityDepartment("KJJ", "科学技术局", "Science and Technology Bureau", "科技", C.departmental,
                   1.0, (S("高新技术企业", "high-tech enterprises", "entity", C.legal_entity),
                    S("科技计划项目", "science programme projects", "project"),
                    S("科技特派员", "science commissioners", "roster"))),
    CityDepartment("GXJ", "工业和信息化局", "Industry and Information Technology Bureau",
                   "工业信息化", C.departmental, 1.0, (
                       S("专精特新企业", "specialised SMEs", "entity"),
                       S("工业投资项目", "industrial investment projects", "project"),
                       S("通信基站", "telecom base stations", "facility"))),
    CityDepartment("MZW", "民族宗教事务委员会", "Ethnic and Religious Affairs Commission",
                   "民族宗教", C.departmental, 0.4, (
                       S("宗教活动场所", "places of worship", "facility"),)),
    CityDepartment("SFJ", "司法局", "Justice Bureau", "司法行政", C.departmental, 1.0, (
        S("律师执业", "lawyer licences", "roster"),
        S("法律援助", "legal aid", "case"),
        S("人民调解", "people's mediation", "case"),
        S("社区矫正", "community corrections", "roster"))),
    CityDepartment("CZJ", "财政局", "Finance Bureau", "财政", C.tax, 1.0, (
        S("政府采购", "government procurement", "project"),
        S("财政预算执行", "budget execution", "statistics", C.macro_economy),
        S("惠民惠农补贴", "benefit payments", "subsidy"))),
    CityDepartment("STHJJ", "生态环境局", "Ecology and Environment Bureau", "生态环境",
                   C.departmental, 1.3, (S("排污许可", "pollutant discharge permits", "licence"),
                                         S("空气质量监测点", "air quality stations", "facility"),
                                         S("重点排污单位", "key polluters", "entity"),
                                         S("环境影响评价", "environmental impact assessments",
                                           "project"))),
    CityDepartment("SLJ", "水利局", "Water Resources Bureau", "水利", C.natural_resources, 0.9, (
        S("取水许可", "water abstraction permits", "licence"),
        S("水库山塘", "reservoirs and ponds", "facility"),
        S("河长制", "river chiefs", "roster"))),
    CityDepartment("NYNCJ", "农业农村局", "Agriculture and Rural Affairs Bureau", "农业农村",
                   C.departmental, 1.2, (S("耕地地力保护补贴", "farmland protection subsidies",
                                           "subsidy"),
                                         S("农民专业合作社", "farmer cooperatives", "entity"),
                                         S("农产品质量检测", "farm produce testing", "statistics"),
                                         S("农机购置补贴", "farm machinery subsidies", "subsidy"))),
    CityDepartment("SWUJ", "商务局", "Commerce Bureau", "商务", C.market, 0.9, (
        S("对外贸易经营者", "foreign trade operators", "entity"),
        S("单用途预付卡", "prepaid card issuers", "entity"),
        S("商贸流通项目", "trade and logistics projects", "project"))),
    CityDepartment("WHLYJ", "文化旅游广电局", "Culture, Tourism, Radio and Television Bureau",
                   "文化旅游", C.departmental, 1.0, (
                       S("A级旅游景区", "graded tourist sites", "facility"),
                       S("网吧", "internet cafés", "licence"),
                       S("文物保护单位", "protected heritage sites", "facility"),
                       S("导游", "tour guides", "roster"))),
    CityDepartment("TYJRJ", "退役军人事务局", "Veterans Affairs Bureau", "退役军人",
                   C.social_security, 0.8, (S("退役军人", "veterans", "roster"),
                         S("优抚对象抚恤补助", "veteran benefits", "subsidy"))),
    CityDepartment("YJGLJ", "应急管理局", "Emergency Management Bureau", "应急管理", C.departmental,
                   1.1, (S("危险化学品经营", "hazardous chemicals trading", "licence"),
                         S("应急避难场所", "emergency shelters", "facility"),
                         S("安全生产检查", "work safety inspections", "penalty"),
                         S("应急救援队伍", "rescue teams", "roster"))),
    CityDepartment("SJ", "审计局", "Audit Bureau", "审计", C.departmental, 0.5, (
        S("审计项目", "audit projects", "project"),)),
    CityDepartment("GZW", "国有资产监督管理委员会", "State-owned Assets Supervision Commission",
                   "国资监管", C.legal_entity, 0.6, (S("市属国有企业", "municipal SOEs", "entity"),
                                                     S("国有资产", "state assets", "statistics"))),
    CityDepartment("TYJ", "体育局", "Sports Bureau", "体育", C.departmental, 0.6, (
        S("公共体育设施", "public sports facilities", "facility"),
        S("社会体育指导员", "sports instructors", "roster"))),
    CityDepartment("TJJ", "统计局", "Statistics Bureau", "统计", C.macro_economy, 1.0, (
        S("地区生产总值", "GDP", "statistics"),
        S("规模以上工业", "industry above designated size", "statistics"),
        S("名录库单位", "statistical business register", "entity", C.legal_entity),
        S("居民收支", "household income and expenditure", "statistics"))),
    CityDepartment("CGJ", "城市管理和综合执法局", "Urban Management and Law Enforcement Bureau",
                   "城市管理", C.departmental, 1.2, (
                       S("户外广告设置", "outdoor advertising", "licence"),
                       S("公共厕所", "public toilets", "facility"),
                       S("渣土运输", "construction waste transport", "licence"),
                       S("市容违法", "city appearance offences", "penalty"))),
    CityDepartment("LYJ", "林业局", "Forestry Bureau", "林业", C.natural_resources, 0.6, (
        S("林木采伐许可", "logging permits", "licence"),
        S("古树名木", "heritage trees", "facility"))),
    CityDepartment("RFB", "人民防空办公室", "Civil Air Defence Office", "人民防空",
                   C.departmental, 0.4, (S("人防工程", "civil air defence shelters", "facility"),)),
    CityDepartment("XFJ", "信访局", "Letters and Calls Bureau", "信访", C.departmental, 0.5, (
        S("信访事项", "petitions", "case"),)),
    CityDepartment("JGSWJ", "机关事务管理局", "Government Offices Administration", "机关事务",
                   C.departmental, 0.4, (S("公务用车", "official vehicles", "facility"),)),
    CityDepartment("JRJ", "地方金融管理局", "Local Financial Regulatory Bureau", "地方金融",
                   C.credit, 0.6, (S("小额贷款公司", "microcredit companies", "entity"),
                         S("融资担保机构", "financing guarantors", "entity"))),
    CityDepartment("LSJ", "粮食和物资储备局", "Grain and Material Reserves Bureau", "粮食储备",
                   C.departmental, 0.4, (S("粮食收储企业", "grain storage companies", "entity"),
                                         S("储备粮库", "grain depots", "facility"))),
    CityDepartment("GJJ", "住房公积金管理中心", "Housing Provident Fund Centre", "住房公积金",
                   C.housing, 0.8, (S("公积金贷款", "provident fund loans", "subsidy"),
                                    S("公积金提取", "provident fund withdrawals", "subsidy"),
                                    S("缴存单位", "contributing employers", "entity"))),
    CityDepartment("QXJ", "气象局", "Meteorological Bureau", "气象", C.natural_resources, 0.5, (
        S("自动气象站", "automatic weather stations", "facility"),
        S("气象灾害预警", "weather warnings", "statistics"))),
    CityDepartment("XFJY", "消防救援支队", "Fire and Rescue Detachment", "消防", C.departmental,
                   0.8, (S("消防安全重点单位", "key fire safety units", "entity"),
                    S("消防设施", "fire facilities", "facility"),
                    S("火灾事故", "fire incidents", "statistics"))),
    CityDepartment("HG", "{bare}海关", "{city_en} Customs", "海关", C.market, 0.6, (
        S("进出口企业备案", "importer and exporter registrations", "entity"),
        S("进出口货物", "imports and exports", "statistics", C.macro_economy))),
    CityDepartment("YCJ", "烟草专卖局", "Tobacco Monopoly Bureau", "烟草专卖", C.market, 0.4, (
        S("烟草专卖零售许可", "tobacco retail licences", "licence"),)),
    CityDepartment("YZGLJ", "邮政管理局", "Postal Administration", "邮政", C.transport, 0.4, (
        S("快递业务经营许可", "express delivery licences", "licence"),
        S("快递网点", "delivery outlets", "facility"))),
    CityDepartment("CL", "残疾人联合会", "Disabled Persons' Federation", "残联",
                   C.social_security, 0.6, (S("残疾人证", "disability certificates", "roster"),
                    S("残疾人就业补贴", "disability employment subsidies", "subsidy"))),
    CityDepartment("FL", "妇女联合会", "Women's Federation", "妇联", C.departmental, 0.3, (
        S("妇女儿童维权", "women's and children's rights cases", "case"),)),
    CityDepartment("ZGH", "总工会", "Federation of Trade Unions", "工会", C.departmental, 0.4, (
        S("困难职工帮扶", "support for workers in hardship", "subsidy"),
        S("基层工会", "grassroots unions", "entity"))),
    CityDepartment("TSW", "共青团{city}委员会", "Communist Youth League {city_en} Committee",
                   "共青团", C.departmental, 0.3, (S("青年志愿者", "youth volunteers", "roster"),)),
    CityDepartment("HSZH", "红十字会", "Red Cross Society", "红十字", C.departmental, 0.3, (
        S("无偿献血", "blood donations", "roster", C.health),
        S("救助款物", "relief donations", "subsidy"))),
    CityDepartment("KX", "科学技术协会", "Association for Science and Technology", "科协",
                   C.departmental, 0.3, (S("科普基地", "science education bases", "facility"),)),
    CityDepartment("GSL", "工商业联合会", "Federation of Industry and Commerce", "工商联",
                   C.legal_entity, 0.3, (S("会员企业", "member enterprises", "entity"),)),
    CityDepartment("DAG", "档案馆", "Municipal Archives", "档案", C.departmental, 0.4, (
        S("馆藏档案目录", "archive catalogue", "entity"),
        S("档案查阅", "archive consultations", "case"))),
    CityDepartment("FY", "中级人民法院", "Intermediate People's Court", "审判", C.credit, 0.8, (
        S("失信被执行人", "judgment defaulters", "roster"),
        S("限制高消费", "consumption restrictions", "roster"),
        S("诉讼案件", "litigation cases", "case"))),
    CityDepartment("JCY", "人民检察院", "People's Procuratorate", "检察", C.departmental, 0.5, (
        S("公益诉讼", "public interest litigation", "case"),)),
    CityDepartment("GGZY", "公共资源交易中心", "Public Resources Trading Centre", "公共资源交易",
                   C.market, 0.8, (S("工程建设招标", "construction tenders", "project"),
                                   S("政府采购交易", "procurement transactions", "project"),
                                   S("评标专家", "bid evaluation experts", "roster"))),
    CityDepartment("RMYH", "中国人民银行{city}分行", "People's Bank of China, {city_en} Branch",
                   "金融", C.credit, 0.5, (S("金融机构", "financial institutions", "entity"),
                                           S("征信机构", "credit bureaus", "entity"))),
    CityDepartment("JRJG", "金融监管分局", "Financial Regulatory Branch", "金融监管", C.credit,
                   0.4, (
        S("保险代理机构", "insurance agencies", "entity"),)),
    CityDepartment("GDGS", "{bare}供电局", "{city_en} Power Supply Bureau", "供电",
                   C.departmental, 0.6, (S("用电户", "electricity accounts", "entity"),
                                         S("企业用电量", "enterprise power consumption",
                                           "statistics", C.macro_economy))),
    CityDepartment("SWJT", "水业集团", "Water Group", "供水", C.departmental, 0.5, (
        S("用水户", "water accounts", "entity"),
        S("供水管网", "water mains", "facility"))),
    CityDepartment("RQGS", "燃气公司", "Gas Company", "燃气", C.departmental, 0.4, (
        S("燃气用户", "gas accounts", "entity"),
        S("燃气安全检查", "gas safety checks", "facility"))),
    CityDepartment("WXB", "网络安全和信息化委员会办公室", "Cyberspace Affairs Office", "网信",
                   C.departmental, 0.3, (
                       S("关键信息基础设施", "critical information infrastructure", "facility"),)),
    CityDepartment("BBJ", "机构编制委员会办公室", "Institutional Staffing Office", "机构编制",
                   C.departmental, 0.3, (S("事业单位登记", "public institution registration",
                                           "entity", C.legal_entity),)),
    CityDepartment("GDJT", "轨道交通集团", "Metro Group", "轨道交通", C.transport, 0.5, (
        S("地铁站点", "metro stations", "facility"),
        S("客流", "ridership", "statistics"))),
)

DISTRICT_SUBJECTS: tuple[Subject, ...] = (
    S("网格员", "grid workers", "roster", C.departmental),
    S("社区工作者", "community workers", "roster", C.departmental),
    S("最低生活保障", "subsistence allowance", "subsidy", C.civil_affairs),
    S("特困供养", "extreme poverty support", "subsidy", C.civil_affairs),
    S("高龄津贴", "old-age allowance", "subsidy", C.civil_affairs),
    S("残疾人两项补贴", "disability allowances", "subsidy", C.social_security),
    S("退役军人服务", "veteran services", "roster", C.social_security),
    S("计划生育特别扶助", "family planning assistance", "subsidy", C.health),
    S("城市管理执法", "city management enforcement", "penalty", C.credit),
    S("安全生产执法", "work safety enforcement", "penalty", C.credit),
    S("政务服务", "government services", "case", C.departmental),
    S("12345热线转办", "hotline referrals", "case", C.departmental),
    S("农村集体资产", "rural collective assets", "facility", C.natural_resources),
    S("公共厕所", "public toilets", "facility", C.departmental),
    S("物业小区", "residential compounds", "facility", C.housing),
    S("重点建设项目", "key construction projects", "project", C.macro_economy),
    S("招商引资项目", "investment promotion projects", "project", C.macro_economy),
    S("经济运行", "economic indicators", "statistics", C.macro_economy),
    S("人口变动", "population change", "statistics", C.population),
    S("规模以上企业", "enterprises above designated size", "entity", C.legal_entity),
    S("小微企业扶持", "small business support", "subsidy", C.market),
    S("临时救助", "temporary assistance", "subsidy", C.civil_affairs),
    S("养老服务设施", "elderly care facilities", "facility", C.civil_affairs),
    S("中小学校", "schools", "entity", C.education),
    S("消防安全隐患", "fire hazards", "facility", C.departmental),
    S("食品安全检查", "food safety inspections", "penalty", C.market),
    S("志愿服务", "volunteer services", "roster", C.departmental),
)

ASPECTS: dict[str, tuple[tuple[str, str], ...]] = {
    "licence": (("核发信息", "issued"), ("变更信息", "amendments"), ("延续信息", "renewals"),
                ("注销信息", "cancellations")),
    "penalty": (("决定信息", "decisions"), ("案件信息", "cases"), ("结案信息", "closed cases")),
    "roster": (("名册", "register"), ("变动信息", "changes"), ("认定信息", "recognitions")),
    "facility": (("基础信息", "basic data"), ("运行监测信息", "monitoring"),
                 ("巡查记录", "inspections")),
    "statistics": (("月度统计", "monthly statistics"), ("年度统计", "annual statistics"),
                   ("分区县统计", "by district")),
    "project": (("项目库", "project register"), ("审批信息", "approvals"),
                ("验收信息", "acceptances")),
    "subsidy": (("发放明细", "payments"), ("申请审核信息", "applications")),
    "case": (("办件信息", "cases"), ("评价信息", "ratings")),
    "entity": (("名录", "directory"), ("认定信息", "recognitions"),
               ("信用评价信息", "credit ratings")),
}
# Update cycle and whether a shape carries personal data.
SHAPE_CYCLES: dict[str, tuple[UpdateCycle, ...]] = {
    "licence": (UpdateCycle.daily, UpdateCycle.weekly, UpdateCycle.monthly),
    "penalty": (UpdateCycle.weekly, UpdateCycle.monthly),
    "roster": (UpdateCycle.monthly, UpdateCycle.quarterly, UpdateCycle.irregular),
    "facility": (UpdateCycle.monthly, UpdateCycle.quarterly, UpdateCycle.yearly),
    "statistics": (UpdateCycle.monthly, UpdateCycle.quarterly, UpdateCycle.yearly),
    "project": (UpdateCycle.monthly, UpdateCycle.quarterly),
    "subsidy": (UpdateCycle.monthly,),
    "case": (UpdateCycle.realtime, UpdateCycle.daily),
    "entity": (UpdateCycle.monthly, UpdateCycle.quarterly, UpdateCycle.yearly),
}
PERSONAL_SHAPES = {"roster", "subsidy", "case"}
SUMMARIES: dict[str, str] = {
    "licence": "包括证照编号、持证主体及其统一社会信用代码、许可内容、发证日期、有效期和状态。",
    "penalty": "包括决定书文号、当事人、违法行为、处罚种类、罚没金额和决定日期。",
    "roster": "包括人员身份信息、联系方式、类别和登记日期。",
    "facility": "包括编号、名称、类型、所在区县、地址、坐标、管理单位和最近检查日期。",
    "statistics": "按统计期、区县和指标汇总的数值。",
    "project": "包括项目代码、名称、建设（实施）单位、总投资、开工日期和状态。",
    "subsidy": "包括对象身份信息、补助项目、金额、发放账户和发放日期。",
    "case": "包括办件编号、事项、申请人、受理和办结时间、办理结果和评价。",
    "entity": "包括统一社会信用代码、名称、法定代表人、类别、地址、认定日期和有效期。",
}


def city_departments() -> tuple[DepartmentSpec, ...]:
    """62 municipal departments (the default world's twelve among them) and 9 districts."""
    known = {d.code: d for d in DEPARTMENTS}
    municipal = []
    for dept in DEPARTMENTS_CITY:
        if dept.code in known:
            municipal.append(known[dept.code])
        elif dept.code == "ZFB":  # the mayor's office: where the city's leader sits
            municipal.append(DepartmentSpec(dept.code, *full_names(dept),
                                            roles=(Role.publisher, Role.requester,
                                                   Role.approver, Role.leader)))
        else:
            municipal.append(DepartmentSpec(dept.code, *full_names(dept)))
    districts = [DepartmentSpec(d.dept_code, f"{d.name}人民政府", f"{d.name_en} Government",
                                kind=DepartmentKind.district, level=AdminLevel.district)
                 for d in vocab.DISTRICTS]
    return (*municipal, *districts)


def full_names(dept: CityDepartment) -> tuple[str, str]:
    zh = (dept.name_zh.format(city=vocab.CITY, bare=vocab.CITY_BARE) if "{" in dept.name_zh
          else f"{vocab.CITY}{dept.name_zh}")
    en = (dept.name_en.format(city_en=vocab.CITY_EN) if "{" in dept.name_en
          else f"{vocab.CITY_EN} {dept.name_en}")
    return zh, en


def city_world(seed: int = 7) -> WorldSpec:
    rng = np.random.default_rng([seed, 2271])
    core = tuple(_shrunk(spec) for spec in default_resources())
    quotas = _quotas(TOTAL_RESOURCES - len(core) - DISTRICT_RESOURCES * len(vocab.DISTRICTS))
    templated: list[ResourceSpec] = []
    for dept, quota in zip(DEPARTMENTS_CITY, quotas, strict=True):
        own_name = full_names(dept)[1]
        subjects = (*dept.subjects, *(s._replace(zh=dept.domain + s.zh, en=f"{s.en} ({own_name})")
                                      for s in GENERIC))
        templated += _department_resources(rng, dept.code, "", subjects, dept.category, quota)
    for d in vocab.DISTRICTS:
        templated += _department_resources(rng, d.dept_code, d.name, DISTRICT_SUBJECTS,
                                           C.departmental, DISTRICT_RESOURCES)
    return WorldSpec(departments=city_departments(), resources=(*core, *templated),
                     population_size=POPULATION_SIZE, enterprise_size=ENTERPRISE_SIZE)


def _shrunk(spec: ResourceSpec) -> ResourceSpec:
    low, high = ROWS_RANGE
    return dataclasses.replace(spec, rows=int(np.clip(spec.rows // 20, low, high)))


def _quotas(total: int) -> list[int]:
    """Split ``total`` over the municipal departments by weight (largest remainder)."""
    weights = np.array([d.weight for d in DEPARTMENTS_CITY])
    exact = weights / weights.sum() * total
    quotas = np.floor(exact).astype(int)
    remainder = total - quotas.sum()
    quotas[np.argsort(-(exact - quotas), kind="stable")[:remainder]] += 1
    return [int(q) for q in quotas]


def _department_resources(rng: np.random.Generator, code: str, place: str,
                          subjects: tuple[Subject, ...], category: Category,
                          quota: int) -> list[ResourceSpec]:
    names = _names(subjects, quota)
    return [_template_spec(rng, code, i, place, subject, aspect, year, category)
            for i, (subject, aspect, year) in enumerate(names)]


def _names(subjects: tuple[Subject, ...],
           quota: int) -> list[tuple[Subject, tuple[str, str], int | None]]:
    """Subject × aspect combinations, then the same for past years, until ``quota``."""
    combos = [(s, a) for s in subjects for a in ASPECTS[s.shape]]
    out: list[tuple[Subject, tuple[str, str], int | None]] = []
    for year in (None, *range(2025, 1999, -1)):
        out += [(s, a, year) for s, a in combos]
        if len(out) >= quota:
            break
    return out[:quota]


def _template_spec(rng: np.random.Generator, code: str, index: int, place: str,
                   subject: Subject, aspect: tuple[str, str], year: int | None,
                   category: Category) -> ResourceSpec:
    name = f"{place}{subject.zh}{aspect[0]}" + (f"（{year}年）" if year else "")
    name_en = f"{subject.en[0].upper()}{subject.en[1:]}: {aspect[1]}" + (
        f" ({year})" if year else "")
    personal = subject.shape in PERSONAL_SHAPES
    sharing = SharingType(rng.choice(["conditional", "unconditional", "not_shareable"],
                                     p=[0.55, 0.38, 0.07] if not personal else [0.85, 0.05, 0.1]))
    cycle = UpdateCycle(rng.choice(SHAPE_CYCLES[subject.shape]))
    if year is not None:  # a closed year's data does not change any more
        cycle = UpdateCycle.irregular
    meta = ResourceIn(
        name=name, name_en=name_en,
        summary=f"{place or vocab.CITY}{subject.zh}{aspect[0]}，{SUMMARIES[subject.shape]}",
        summary_en=f"{name_en}, as kept by the provider.",
        category=subject.category or category,
        keywords=[subject.zh, aspect[0][:2], place or vocab.CITY],
        items=SHAPE_ITEMS[subject.shape](), sharing_type=sharing,
        sharing_condition=DEFAULT if sharing is SharingType.conditional else "",
        update_cycle=cycle,
        security_level=SecurityLevel.important if personal else SecurityLevel.general,
        date_item=SHAPE_DATE_ITEMS[subject.shape])
    low, high = ROWS_RANGE
    rows = int(np.exp(rng.uniform(np.log(low), np.log(high))))
    return ResourceSpec(
        key=f"{code.lower()}.t{index:03d}", provider=code, meta=meta, rows=rows,
        generator=f"template.{subject.shape}",
        params=(("subject", subject.zh), ("aspect", aspect[0]), ("place", place)),
        file_format=FileFormat.csv if rng.random() < 0.1 else FileFormat.parquet,
        defects=_template_defects(rng, subject.shape, cycle))


def _template_defects(rng: np.random.Generator, shape: str,
                      cycle: UpdateCycle) -> tuple[Defect, ...]:
    defects: list[Defect] = []
    period = cycle.period
    if period is not None and rng.random() < 0.12:
        defects.append(Defect(DefectKind.stale, days=int(period.days * rng.uniform(1.5, 4)) + 2))
    if rng.random() < 0.12:
        options = SHAPE_DEFECTS[shape]
        defects.append(options[int(rng.integers(0, len(options)))])
    return tuple(defects)


# --- shapes: items, defects and generators ---------------------------------------------------

def _licence_items() -> list[DataItemIn]:
    return [item("licence_no", "证照编号", "Licence number", key=True),
            org_name("holder", "持证主体", "Holder"), uscc(),
            item("licence_item", "许可事项", "Licensed activity", required=True),
            item("issued_on", "发证日期", "Issued on", D, required=True),
            item("valid_until", "有效期至", "Valid until", D),
            code("status", "证照状态", "Status", ("有效", "注销", "吊销", "过期")),
            item("authority", "发证机关", "Issued by", required=True)]


def _penalty_items() -> list[DataItemIn]:
    return [item("decision_no", "决定书文号", "Decision number", key=True),
            org_name("party", "当事人名称", "Party"), uscc(required=False),
            item("violation", "违法行为", "Violation", required=True),
            code("penalty_type", "处罚种类", "Penalty", vocab.PENALTY_TYPES),
            amount("fine", "罚没金额", "Fine", required=False),
            item("decided_on", "处罚决定日期", "Decided on", D, required=True),
            item("authority", "处罚机关", "Decided by", required=True)]


def _roster_items() -> list[DataItemIn]:
    return [item("record_no", "登记编号", "Record number", key=True), person_name(),
            resident_id(), gender(), birth_date(), mobile(),
            code("category", "人员类别", "Category", ("一般", "重点", "特殊")),
            district(), item("registered_on", "登记日期", "Registered on", D, required=True)]


FACILITY_TYPES = ("甲类", "乙类", "丙类", "其他")


def _facility_items() -> list[DataItemIn]:
    return [item("facility_code", "设施编号", "Facility code", key=True),
            item("facility_name", "设施名称", "Name", required=True),
            code("facility_type", "设施类型", "Type", FACILITY_TYPES), district(),
            address(required=True, sensitivity=Sensitivity.none),
            item("longitude", "经度", "Longitude", DEC, required=True),
            item("latitude", "纬度", "Latitude", DEC, required=True),
            org_name("manager", "管理单位", "Managed by"),
            code("status", "运行状态", "Status", ("在用", "停用", "在建")),
            item("inspected_on", "最近检查日期", "Last inspected on", D, required=True)]


INDICATORS = ("数量", "金额", "同比增长", "人次")


def _statistics_items() -> list[DataItemIn]:
    return [item("period", "统计期", "Period", D, key=True, description="统计期的第一天"),
            code("district", "所属区县", "District", tuple(d.name for d in vocab.DISTRICTS),
                 key=True),
            code("indicator", "指标", "Indicator", INDICATORS, key=True),
            item("value", "指标值", "Value", DEC, required=True),
            item("unit", "计量单位", "Unit", required=True),
            item("reported_on", "填报日期", "Reported on", D, required=True)]


def _project_items() -> list[DataItemIn]:
    return [item("project_code", "项目代码", "Project code", key=True,
                 description="全国投资项目在线审批监管平台统一代码"),
            item("project_name", "项目名称", "Project", required=True),
            org_name("owner", "项目单位", "Owner"), uscc(),
            amount("investment", "总投资", "Total investment", unit="万元"),
            item("start_date", "计划开工日期", "Planned start", D),
            code("status", "项目状态", "Status", ("谋划", "审批中", "在建", "竣工", "终止")),
            item("approved_on", "审批日期", "Approved on", D, required=True)]


def _subsidy_items() -> list[DataItemIn]:
    return [item("record_no", "发放编号", "Payment number", key=True), person_name(),
            resident_id(), item("subsidy_item", "补助项目", "Benefit", required=True),
            amount("amount", "发放金额", "Amount", sensitivity=Sensitivity.personal),
            bank_card(), district(), item("paid_on", "发放日期", "Paid on", D, required=True)]


RATINGS = ("非常满意", "满意", "基本满意", "不满意", "非常不满意")


def _case_items() -> list[DataItemIn]:
    return [item("case_no", "办件编号", "Case number", key=True),
            item("service", "事项名称", "Service", required=True),
            person_name("applicant", "申请人", "Applicant"),
            resident_id("applicant_id", "申请人身份证号码", "Applicant's ID"),
            item("accepted_at", "受理时间", "Accepted at", DT, required=True),
            item("completed_at", "办结时间", "Completed at", DT),
            code("result", "办理结果", "Result", ("办结", "办理中", "不予受理")),
            code("rating", "评价", "Rating", RATINGS, required=False)]


def _entity_items() -> list[DataItemIn]:
    return [uscc(key=True), org_name("name", "名称", "Name"),
            person_name("legal_representative", "法定代表人", "Legal representative"),
            code("category", "类别", "Category", ("A类", "B类", "C类")), district(),
            address(required=True, sensitivity=Sensitivity.none),
            item("recognised_on", "认定日期", "Recognised on", D, required=True),
            item("valid_until", "有效期至", "Valid until", D)]


SHAPE_ITEMS: dict[str, Callable[[], list[DataItemIn]]] = {
    "licence": _licence_items, "penalty": _penalty_items, "roster": _roster_items,
    "facility": _facility_items, "statistics": _statistics_items,
    "project": _project_items, "subsidy": _subsidy_items, "case": _case_items,
    "entity": _entity_items,
}
SHAPE_DATE_ITEMS: dict[str, str] = {
    "licence": "issued_on", "penalty": "decided_on", "roster": "registered_on",
    "facility": "inspected_on", "statistics": "reported_on", "project": "approved_on",
    "subsidy": "paid_on", "case": "accepted_at", "entity": "recognised_on",
}
SHAPE_DEFECTS: dict[str, tuple[Defect, ...]] = {
    "licence": (Defect(DefectKind.invalid_uscc, "uscc", 0.01),
                Defect(DefectKind.null_required, "holder", 0.02)),
    "penalty": (Defect(DefectKind.code_not_in_list, "penalty_type", 0.02),),
    "roster": (Defect(DefectKind.invalid_resident_id, "resident_id", 0.01),
               Defect(DefectKind.invalid_mobile, "mobile", 0.03),
               Defect(DefectKind.birth_date_mismatch, "birth_date", 0.01)),
    "facility": (Defect(DefectKind.null_required, "address", 0.05),),
    "statistics": (Defect(DefectKind.null_required, "unit", 0.02),),
    "project": (Defect(DefectKind.invalid_uscc, "uscc", 0.02),),
    "subsidy": (Defect(DefectKind.null_required, "bank_card", 0.02),
                Defect(DefectKind.invalid_resident_id, "resident_id", 0.005)),
    "case": (Defect(DefectKind.null_required, "applicant", 0.01),),
    "entity": (Defect(DefectKind.invalid_uscc, "uscc", 0.01),),
}


def _authority(ctx: GenContext) -> str:
    provider = ctx.spec.provider
    return ctx.spec.param("place") or next(
        (full_names(d)[0] for d in DEPARTMENTS_CITY if d.code == provider), vocab.CITY)


def _subject(ctx: GenContext) -> str:
    return ctx.spec.param("subject")


@generator("template.licence")
def licence(ctx: GenContext) -> Columns:
    firms = ctx.firms(replace=True)
    n = len(firms)
    issued = ctx.days(5 * YEAR, n)
    valid = add_years(issued, 3)
    status = np.where(valid < ctx.end_day, 3, ctx.choice(3, n, [0.92, 0.06, 0.02]))
    return {
        "licence_no": ctx.serial(ctx.spec.provider, 8, n), "holder": firms.col("name"),
        "uscc": firms.col("uscc"), "licence_item": pa.array([_subject(ctx)] * n),
        "issued_on": dates(issued), "valid_until": dates(valid),
        "status": pa.array(["有效", "注销", "吊销", "过期"]).take(status),
        "authority": pa.array([_authority(ctx)] * n),
    }


@generator("template.penalty")
def penalty(ctx: GenContext) -> Columns:
    firms = ctx.firms(replace=True)
    n = len(firms)
    decided = ctx.days(3 * YEAR, n)
    return {
        "decision_no": join(ctx.spec.provider, "罚〔", numbers(years_of(decided)), "〕",
                            ctx.serial("", 5, n), "号"),
        "party": firms.col("name"), "uscc": firms.col("uscc"),
        "violation": pa.array([f"违反{_subject(ctx)}管理规定"] * n),
        "penalty_type": ctx.pick(vocab.PENALTY_TYPES, n, [0.25, 0.55, 0.1, 0.06, 0.04]),
        "fine": ctx.money(5000, 1.0, n, low=100),
        "decided_on": dates(decided), "authority": pa.array([_authority(ctx)] * n),
    }


@generator("template.roster")
def roster(ctx: GenContext) -> Columns:
    people = ctx.people(min_age=18, max_age=80)
    n = len(people)
    return {
        "record_no": ctx.serial(ctx.spec.provider, 8, n), "name": people.col("name"),
        "resident_id": people.col("resident_id"), "gender": people.col("gender"),
        "birth_date": people.col("birth_date"), "mobile": people.col("mobile"),
        "category": ctx.pick(("一般", "重点", "特殊"), n, [0.8, 0.15, 0.05]),
        "district": ctx.district_names(people.district),
        "registered_on": ctx.dates(8 * YEAR, n, skew=1.5),
    }


@generator("template.facility")
def facility(ctx: GenContext) -> Columns:
    n = ctx.n
    district = pools.district_indices(ctx.rng, n)
    managers = ctx.firms(n, replace=True)
    lon, lat = vocab.LON_RANGE, vocab.LAT_RANGE
    return {
        "facility_code": ctx.serial(ctx.spec.provider + "-", 6, n),
        "facility_name": join(ctx.district_names(district),
                              ctx.pools.communities.take(ctx.rng.integers(
                                  0, len(ctx.pools.communities), n)), _subject(ctx)),
        "facility_type": ctx.pick(FACILITY_TYPES, n, [0.3, 0.4, 0.2, 0.1]),
        "district": ctx.district_names(district),
        "address": pools.addresses(ctx.rng, ctx.pools, district, residential=False),
        "longitude": np.round(ctx.rng.uniform(*lon, n), 6),
        "latitude": np.round(ctx.rng.uniform(*lat, n), 6),
        "manager": managers.col("name"),
        "status": ctx.pick(("在用", "停用", "在建"), n, [0.85, 0.08, 0.07]),
        "inspected_on": ctx.dates(YEAR, n),
    }


@generator("template.statistics")
def statistics(ctx: GenContext) -> Columns:
    per_period = len(vocab.DISTRICTS) * len(INDICATORS)
    periods = max(1, ctx.n // per_period)
    n = periods * per_period
    slot = np.arange(n)
    month = slot // per_period
    first_of_month = (np.datetime64(ctx.end, "M") - 1 - month).astype("datetime64[D]")
    district = (slot // len(INDICATORS)) % len(vocab.DISTRICTS)
    indicator = slot % len(INDICATORS)
    reported = np.minimum(first_of_month.astype(np.int64) + 40, ctx.end_day)
    return {
        "period": first_of_month, "district": ctx.district_names(district),
        "indicator": pa.array(INDICATORS).take(indicator),
        "value": np.round(np.exp(ctx.rng.normal(6, 1.5, n)), 2),
        "unit": pa.array(["个", "万元", "%", "人次"]).take(indicator),
        "reported_on": dates(reported),
    }


@generator("template.project")
def project(ctx: GenContext) -> Columns:
    owners = ctx.firms(replace=True)
    n = len(owners)
    approved = ctx.days(4 * YEAR, n)
    region = numbers(ctx.district_codes(owners.district))
    community = ctx.pools.communities.take(ctx.rng.integers(0, len(ctx.pools.communities), n))
    return {
        # National investment project code: year-region-industry-type-serial.
        "project_code": join(numbers(years_of(approved)), "-", region, "-",
                             numbers(ctx.ints(1, 99, n), 2), "-0", numbers(ctx.ints(1, 4, n)),
                             "-", ctx.serial("", 6, n)),
        "project_name": join(community, _subject(ctx), "项目"),
        "owner": owners.col("name"), "uscc": owners.col("uscc"),
        "investment": ctx.money(2000, 1.3, n, low=10),
        "start_date": dates(approved + ctx.ints(30, 400, n)),
        "status": ctx.pick(("谋划", "审批中", "在建", "竣工", "终止"), n,
                           [0.1, 0.15, 0.4, 0.3, 0.05]),
        "approved_on": dates(approved),
    }


@generator("template.subsidy")
def subsidy(ctx: GenContext) -> Columns:
    people = ctx.people(min_age=16, max_age=95, replace=True)
    n = len(people)
    bank = ctx.choice(len(vocab.BANKS), n)
    return {
        "record_no": ctx.serial(ctx.spec.provider, 10, n), "name": people.col("name"),
        "resident_id": people.col("resident_id"),
        "subsidy_item": pa.array([_subject(ctx)] * n),
        "amount": ctx.money(600, 0.8, n, low=50),
        "bank_card": ids.bank_cards(ctx.rng, np.array([int(b) for _, b in vocab.BANKS])[bank]),
        "district": ctx.district_names(people.district),
        "paid_on": ctx.dates(YEAR, n),
    }


@generator("template.case")
def case(ctx: GenContext) -> Columns:
    applicants = ctx.people(min_age=18, max_age=85, replace=True)
    n = len(applicants)
    accepted = ctx.timestamps(ctx.days(YEAR, n) - 1)
    completed = accepted + ctx.ints(3600, 15 * 86_400, n).astype("timedelta64[s]")
    open_case = completed > np.datetime64(ctx.end) + np.timedelta64(0, "s")
    result = np.where(open_case, 1, ctx.choice(3, n, [0.96, 0.0, 0.04]))
    return {
        "case_no": ctx.serial(ctx.spec.provider, 12, n),
        "service": pa.array([f"{_subject(ctx)}办理"] * n),
        "applicant": applicants.col("name"), "applicant_id": applicants.col("resident_id"),
        "accepted_at": accepted, "completed_at": null_where(completed, open_case),
        "result": pa.array(["办结", "办理中", "不予受理"]).take(result),
        "rating": null_where(ctx.pick(RATINGS, n, [0.6, 0.25, 0.1, 0.04, 0.01]), open_case),
    }


@generator("template.entity")
def entity(ctx: GenContext) -> Columns:
    firms = ctx.firms()
    n = len(firms)
    recognised = ctx.days(6 * YEAR, n)
    return {
        "uscc": firms.col("uscc"), "name": firms.col("name"),
        "legal_representative": firms.col("legal_representative"),
        "category": ctx.pick(("A类", "B类", "C类"), n, [0.3, 0.5, 0.2]),
        "district": firms.col("district"), "address": firms.col("address"),
        "recognised_on": dates(recognised),
        "valid_until": null_where(dates(add_years(recognised, 3)), ctx.rng.random(n) < 0.3),
    }
