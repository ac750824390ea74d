"""The default demo world: twelve departments of the city, their users and 54 resources.

Resource keys are ``<department>.<topic>``; the key also names the generator that makes the
rows (``generate.GENERATORS``) so declarations and data cannot drift apart unnoticed (the
tests generate every resource and compare its columns with the declared items).
"""

from __future__ import annotations

from catalog.models import (
    Category,
    ItemKind,
    SecurityLevel,
    Sensitivity,
    SharingMethod,
    SharingType,
    UpdateCycle,
)
from catalog.schemas import DataItemIn, ResourceIn
from govshare_demo import vocab
from govshare_demo.spec import (
    BOOL,
    DEC,
    DT,
    INT,
    SP,
    D,
    Defect,
    DepartmentSpec,
    FileFormat,
    P,
    ResourceSpec,
    WorldSpec,
    address,
    amount,
    bad_ids,
    bad_mobiles,
    bad_usccs,
    bank_card,
    birth_date,
    birth_mismatch,
    code,
    district,
    gender,
    item,
    mobile,
    nulls,
    off_list,
    org_name,
    person_name,
    resident_id,
    stale,
    uscc,
)
from kernel.identity import DepartmentKind, Role

C = vocab.CITY
NONE = Sensitivity.none
DEPARTMENTS: tuple[DepartmentSpec, ...] = (
    DepartmentSpec("GA", f"{C}公安局", f"{vocab.CITY_EN} Public Security Bureau"),
    DepartmentSpec("SCJG", f"{C}市场监督管理局",
                   f"{vocab.CITY_EN} Administration for Market Regulation"),
    DepartmentSpec("RSJ", f"{C}人力资源和社会保障局",
                   f"{vocab.CITY_EN} Human Resources and Social Security Bureau"),
    DepartmentSpec("MZJ", f"{C}民政局", f"{vocab.CITY_EN} Civil Affairs Bureau"),
    DepartmentSpec("WJW", f"{C}卫生健康委员会", f"{vocab.CITY_EN} Health Commission"),
    DepartmentSpec("SWJ", f"国家税务总局{C}税务局", f"{vocab.CITY_EN} Municipal Tax Service, STA"),
    DepartmentSpec("JYJ", f"{C}教育局", f"{vocab.CITY_EN} Education Bureau"),
    DepartmentSpec("ZJJ", f"{C}住房和城乡建设局",
                   f"{vocab.CITY_EN} Housing and Urban-Rural Development Bureau"),
    DepartmentSpec("ZRZYJ", f"{C}自然资源和规划局",
                   f"{vocab.CITY_EN} Natural Resources and Planning Bureau"),
    DepartmentSpec("JTJ", f"{C}交通运输局", f"{vocab.CITY_EN} Transport Bureau"),
    DepartmentSpec("YBJ", f"{C}医疗保障局", f"{vocab.CITY_EN} Healthcare Security Administration"),
    DepartmentSpec("SJJ", f"{C}政务服务和数据管理局",
                   f"{vocab.CITY_EN} Government Services and Data Administration",
                   kind=DepartmentKind.bureau,
                   roles=(Role.publisher, Role.requester, Role.approver, Role.auditor,
                          Role.admin, Role.leader)),
)

ROLE_TITLES: dict[Role, str] = {
    Role.publisher: "数据发布员",
    Role.requester: "数据申请员",
    Role.approver: "共享审核员",
    Role.auditor: "数据质量审计员",
    Role.leader: "分管领导",
    Role.admin: "平台管理员",
}

# Sharing conditions, phrased as a catalog compiler would.
IDENTITY = "仅限依法履行身份核验、社会管理职责使用，须说明用途并经提供部门审核，不得向第三方提供。"
SOCIAL = "限于社会保障待遇审核、资格认定等法定职责使用，按最小必要原则申请信息项。"
HEALTH = "涉及个人健康信息，仅限医疗保障、疾病预防控制和公共卫生管理职责使用，经审批后脱敏提供。"
TAX = "依据《税收征收管理法》第八条，仅限法定职责范围内使用，须经税务机关审核同意。"
MARKET = "限于市场监管、信用监管和政务服务事项办理使用。"
PROPERTY = "限于不动产登记、税费征收、住房保障资格审核等职责使用，需经提供部门审核。"
DEFAULT = "需向提供部门提出申请，说明使用事由和范围，经审核同意后使用。"
PUBLIC = ""  # unconditional resources state no condition

_PUBLIC_RESOURCES = "向社会公开，可无条件共享。"


def resource(key: str, name: str, name_en: str, category: Category, summary: str,
             summary_en: str, keywords: list[str], items: list[DataItemIn], *,
             sharing: SharingType, cycle: UpdateCycle, rows: int, condition: str = PUBLIC,
             date_item: str | None = None, security: SecurityLevel = SecurityLevel.general,
             method: SharingMethod = SharingMethod.file,
             fmt: FileFormat = FileFormat.parquet,
             defects: tuple[Defect, ...] = ()) -> ResourceSpec:
    provider = key.split(".")[0].upper()
    if sharing is SharingType.unconditional:
        summary = f"{summary}{_PUBLIC_RESOURCES}"
    meta = ResourceIn(name=name, name_en=name_en, summary=summary, summary_en=summary_en,
                      category=category, keywords=keywords, items=items, sharing_type=sharing,
                      sharing_condition=condition, sharing_method=method, update_cycle=cycle,
                      security_level=security, date_item=date_item)
    return ResourceSpec(key=key, provider=provider, meta=meta, rows=rows, generator=key,
                        file_format=fmt, defects=defects)


U, CO, NS = SharingType.unconditional, SharingType.conditional, SharingType.not_shareable
IMPORTANT, CORE = SecurityLevel.important, SecurityLevel.core
REALTIME, DAILY, WEEKLY, MONTHLY, QUARTERLY, YEARLY, IRREGULAR = (
    UpdateCycle.realtime, UpdateCycle.daily, UpdateCycle.weekly, UpdateCycle.monthly,
    UpdateCycle.quarterly, UpdateCycle.yearly, UpdateCycle.irregular)
CSV, JSONL = FileFormat.csv, FileFormat.jsonl
_PERSON = [person_name(), resident_id(), gender(), birth_date()]


def _record_date(name: str, title: str, title_en: str) -> DataItemIn:
    return item(name, title, title_en, D, required=True)


def _public_security() -> list[ResourceSpec]:
    return [
        resource(
            "ga.population", "人口基础信息", "Basic population information", Category.population,
            "全市实有户籍人口的身份、性别、民族、出生日期、文化程度、婚姻状况、住址和联系方式，"
            "是人口综合库的权威来源。",
            "Identity, sex, ethnicity, date of birth, education, marital status, address and "
            "mobile of every registered resident; the authoritative source of the population "
            "database.",
            ["人口", "身份证", "户籍", "实有人口", "居民"],
            [resident_id(key=True), person_name(), gender(), birth_date(),
             code("ethnicity", "民族", "Ethnicity", vocab.ETHNICITIES, sensitivity=P),
             code("education", "文化程度", "Education", vocab.EDUCATION_LEVELS, required=False),
             code("marital_status", "婚姻状况", "Marital status", vocab.MARITAL_STATUSES,
                  required=False, sensitivity=P),
             district(), address(required=True), mobile(),
             _record_date("updated_on", "信息更新日期", "Record updated on")],
            sharing=CO, condition=IDENTITY, cycle=DAILY, rows=300_000, date_item="updated_on",
            security=IMPORTANT, method=SharingMethod.api,
            defects=(bad_ids(rate=0.0005), birth_mismatch(rate=0.001))),
        resource(
            "ga.household", "户籍登记信息", "Household registration", Category.population,
            "常住户口登记簿信息：户号、户别、与户主关系、户籍地址、迁入日期和户籍派出所。",
            "Household register entries: household number and type, relationship to the head "
            "of household, registered address, date moved in and registering police station.",
            ["户籍", "户口", "户主", "迁入"],
            [item("household_no", "户号", "Household number", key=True),
             resident_id(key=True), person_name(),
             code("household_type", "户别", "Household type", vocab.HOUSEHOLD_TYPES),
             code("relation", "与户主关系", "Relationship to head of household",
                  vocab.HOUSEHOLD_RELATIONS, sensitivity=P),
             address("registered_address", "户籍地址", "Registered address", required=True),
             item("police_station", "户籍派出所", "Registering police station", required=True),
             _record_date("moved_in_on", "迁入日期", "Moved in on")],
            sharing=CO, condition=IDENTITY, cycle=MONTHLY, rows=60_000, date_item="moved_in_on",
            security=IMPORTANT, defects=()),
        resource(
            "ga.residence_permit", "居住证信息", "Residence permits", Category.population,
            "非本市户籍人员申领的居住证：证件号码、居住地址、申领事由、签发和有效期。",
            "Residence permits of residents registered elsewhere: permit number, address, "
            "reason, issue and expiry dates.",
            ["居住证", "流动人口", "积分落户"],
            [item("permit_no", "居住证编号", "Permit number", key=True), *_PERSON,
             address(required=True),
             code("reason", "申领事由", "Reason", ("务工", "经商", "就学", "投靠亲属", "其他")),
             _record_date("issued_on", "签发日期", "Issued on"),
             item("valid_until", "有效期至", "Valid until", D, required=True)],
            sharing=CO, condition=IDENTITY, cycle=WEEKLY, rows=15_000, date_item="issued_on",
            fmt=CSV, defects=(nulls("address", 0.03),)),
        resource(
            "ga.vehicle", "机动车登记信息", "Motor vehicle registration", Category.transport,
            "本市登记的机动车：号牌、车辆类型、品牌、车辆识别代号、所有人、燃料种类和检验有效期。",
            "Motor vehicles registered in the city: plate, type, make, VIN, owner, fuel and "
            "inspection validity.",
            ["机动车", "车辆", "号牌", "车管所"],
            [item("plate_no", "号牌号码", "Plate number", key=True),
             code("vehicle_type", "车辆类型", "Vehicle type", vocab.VEHICLE_TYPES),
             item("brand", "品牌", "Make", required=True),
             item("vin", "车辆识别代号", "VIN", required=True, kind=ItemKind.other),
             code("colour", "车身颜色", "Colour", vocab.VEHICLE_COLOURS),
             code("fuel", "燃料种类", "Fuel", vocab.FUEL_TYPES),
             person_name("owner_name", "所有人", "Owner"),
             resident_id("owner_id", "所有人身份证号码"),
             _record_date("registered_on", "初次登记日期", "First registered on"),
             item("inspection_valid_until", "检验有效期止", "Inspection valid until", D),
             code("status", "机动车状态", "Status", vocab.VEHICLE_STATUSES)],
            sharing=CO, condition=DEFAULT, cycle=DAILY, rows=30_000, date_item="registered_on"),
        resource(
            "ga.driver_licence", "机动车驾驶证信息", "Driving licences", Category.e_license,
            "驾驶证信息：证号（即公民身份号码）、准驾车型、初次领证日期、有效期、记分和状态。",
            "Driving licences: licence number (the resident ID), vehicle classes, first issue, "
            "validity, penalty points and status.",
            ["驾驶证", "驾驶人", "准驾车型", "电子证照"],
            [resident_id(key=True, title="驾驶证号"), person_name(), gender(), birth_date(),
             mobile(required=True),
             code("licence_class", "准驾车型", "Vehicle classes", vocab.DRIVING_CLASSES),
             _record_date("first_issued_on", "初次领证日期", "First issued on"),
             item("valid_until", "有效期至", "Valid until", D, required=True),
             item("points", "累积记分", "Penalty points", INT, required=True),
             code("status", "驾驶证状态", "Status", vocab.LICENCE_STATUSES)],
            sharing=CO, condition=DEFAULT, cycle=DAILY, rows=40_000,
            date_item="first_issued_on", defects=(bad_mobiles(rate=0.01),)),
        resource(
            "ga.offender", "违法犯罪人员信息", "Offender records", Category.departmental,
            "公安机关处理的违法犯罪人员及处理结果，属于核心数据，不予共享。",
            "People dealt with by the police for offences, and the outcome. Core data; not "
            "shared.",
            ["违法犯罪", "案件", "处理结果"],
            [item("case_no", "案件编号", "Case number", key=True), *_PERSON,
             code("offence", "违法犯罪类型", "Offence", vocab.OFFENCES, sensitivity=SP),
             code("disposition", "处理结果", "Disposition", vocab.DISPOSITIONS, sensitivity=SP),
             _record_date("decided_on", "处理日期", "Decided on")],
            sharing=NS, cycle=DAILY, rows=3_000, date_item="decided_on", security=CORE),
    ]


def _market() -> list[ResourceSpec]:
    return [
        resource(
            "scjg.enterprise", "企业登记信息", "Enterprise registration", Category.legal_entity,
            "在本市登记的企业和农民专业合作社：名称、统一社会信用代码、类型、法定代表人、注册资本、"
            "成立日期、行业、住所和登记状态，是法人综合库的权威来源。",
            "Companies and cooperatives registered in the city: name, credit code, type, legal "
            "representative, capital, date founded, industry, domicile and status.",
            ["企业", "法人", "统一社会信用代码", "商事登记"],
            [uscc(key=True), org_name("name", "企业名称", "Enterprise name"),
             code("enterprise_type", "企业类型", "Type", vocab.ENTERPRISE_TYPES),
             person_name("legal_representative", "法定代表人", "Legal representative"),
             resident_id("legal_representative_id", "法定代表人身份证号码",
                         "Legal representative's ID"),
             amount("registered_capital", "注册资本", "Registered capital", unit="万元"),
             _record_date("established", "成立日期", "Founded on"),
             code("industry", "行业门类", "Industry section", vocab.INDUSTRY_LABELS),
             district(), address(sensitivity=NONE, required=True, title="住所"),
             code("status", "登记状态", "Status", vocab.ENTERPRISE_STATUSES),
             _record_date("approved_on", "核准日期", "Last approved on")],
            sharing=CO, condition=MARKET, cycle=DAILY, rows=25_000, date_item="approved_on",
            method=SharingMethod.api),
        resource(
            "scjg.business_licence", "营业执照信息", "Business licences", Category.e_license,
            "电子营业执照照面信息：名称、统一社会信用代码、类型、法定代表人、注册资本、成立日期、"
            "营业期限和经营范围。",
            "Electronic business licences: name, credit code, type, legal representative, "
            "capital, date founded, term and business scope.",
            ["营业执照", "电子证照", "经营范围"],
            [uscc(key=True), org_name("name", "名称", "Name"),
             code("enterprise_type", "类型", "Type", vocab.ENTERPRISE_TYPES),
             person_name("legal_representative", "法定代表人", "Legal representative"),
             amount("registered_capital", "注册资本", "Registered capital", unit="万元"),
             item("established", "成立日期", "Founded on", D, required=True),
             item("term_until", "营业期限至", "Term until", D,
                  description="空值表示长期"),
             item("business_scope", "经营范围", "Business scope", required=True),
             item("authority", "登记机关", "Registration authority", required=True),
             _record_date("issued_on", "发照日期", "Issued on")],
            sharing=U, cycle=DAILY, rows=25_000, date_item="issued_on"),
        resource(
            "scjg.individual_business", "个体工商户登记信息", "Individual businesses",
            Category.legal_entity,
            "个体工商户：名称、统一社会信用代码、经营者、组成形式、经营范围、经营场所和登记日期。",
            "Sole traders: name, credit code, operator, form, business scope, premises and "
            "registration date.",
            ["个体工商户", "经营者", "小微"],
            [uscc(key=True), org_name("name", "名称", "Name"),
             person_name("operator", "经营者", "Operator"),
             resident_id("operator_id", "经营者身份证号码", "Operator's ID"),
             code("form", "组成形式", "Form", ("个人经营", "家庭经营")),
             code("industry", "行业门类", "Industry section", vocab.INDUSTRY_LABELS),
             address("premises", "经营场所", "Premises", required=True,
                     sensitivity=NONE),
             _record_date("registered_on", "登记日期", "Registered on"),
             code("status", "登记状态", "Status", vocab.ENTERPRISE_STATUSES)],
            sharing=CO, condition=MARKET, cycle=WEEKLY, rows=12_000, date_item="registered_on",
            fmt=CSV, defects=(bad_usccs(rate=0.004), nulls("operator_id", 0.02))),
        resource(
            "scjg.penalty", "市场监管行政处罚信息", "Market regulation penalties", Category.credit,
            "“双公示”行政处罚决定：决定书文号、当事人、违法行为类型、处罚种类、罚没金额和决定日期。",
            "Administrative penalty decisions published under the 'double publicity' rule.",
            ["行政处罚", "双公示", "信用", "失信"],
            [item("decision_no", "决定书文号", "Decision number", key=True),
             org_name("party", "当事人名称", "Party"), uscc(),
             person_name("legal_representative", "法定代表人", "Legal representative"),
             code("violation", "违法行为类型", "Violation", vocab.VIOLATIONS),
             code("penalty_type", "处罚种类", "Penalty", vocab.PENALTY_TYPES),
             amount("fine", "罚没款金额", "Fine", unit="万元"),
             _record_date("decided_on", "处罚决定日期", "Decided on")],
            sharing=U, cycle=WEEKLY, rows=2_500, date_item="decided_on"),
        resource(
            "scjg.food_licence", "食品经营许可信息", "Food business licences", Category.e_license,
            "食品经营许可证：许可证编号、经营者、统一社会信用代码、经营项目、经营场所、发证和有效期。",
            "Food business licences: number, operator, credit code, activities, premises, "
            "issue and expiry.",
            ["食品经营", "许可证", "食品安全"],
            [item("licence_no", "许可证编号", "Licence number", key=True),
             org_name("operator", "经营者名称", "Operator"), uscc(),
             code("business_item", "经营项目", "Activity", vocab.FOOD_BUSINESS_ITEMS),
             address("premises", "经营场所", "Premises", required=True, sensitivity=NONE),
             _record_date("issued_on", "发证日期", "Issued on"),
             item("valid_until", "有效期至", "Valid until", D, required=True),
             code("status", "许可状态", "Status", ("有效", "注销", "吊销", "过期"))],
            sharing=U, cycle=WEEKLY, rows=8_000, date_item="issued_on",
            defects=(off_list("status", 0.01),)),
        resource(
            "scjg.annual_report", "企业年度报告信息", "Enterprise annual reports", Category.market,
            "企业通过国家企业信用信息公示系统报送的年度报告：从业人数、资产、营业收入、纳税总额。"
            "本资源未按年度更新周期及时更新。",
            "Annual reports filed through the enterprise credit publicity system: staff, "
            "assets, revenue, taxes. Overdue for its yearly update.",
            ["年报", "企业信用", "公示"],
            [uscc(key=True), org_name("name", "企业名称", "Enterprise name"),
             item("report_year", "报告年度", "Report year", INT, key=True),
             item("employees", "从业人数", "Employees", INT, required=True),
             amount("total_assets", "资产总额", "Total assets", unit="万元"),
             amount("revenue", "营业总收入", "Revenue", unit="万元"),
             amount("tax_paid", "纳税总额", "Taxes paid", unit="万元"),
             _record_date("submitted_on", "报送日期", "Submitted on")],
            sharing=U, cycle=YEARLY, rows=20_000, date_item="submitted_on",
            defects=(stale(520),)),
    ]


def _human_resources() -> list[ResourceSpec]:
    insured = [resident_id(key=True), person_name()]
    return [
        resource(
            "rsj.si_enrolment", "社会保险参保登记信息", "Social insurance enrolment",
            Category.social_security,
            "职工和城乡居民的养老、失业、工伤保险参保登记：险种、参保单位、参保日期和参保状态。",
            "Enrolment in pension, unemployment and work-injury insurance: scheme, employer, "
            "date enrolled and status.",
            ["社会保险", "参保", "养老保险", "社保"],
            [*insured, code("insurance_type", "险种", "Scheme", vocab.SOCIAL_INSURANCE_TYPES,
                            key=True),
             org_name("employer", "参保单位", "Employer", required=False),
             uscc("employer_uscc", "参保单位统一社会信用代码", "Employer's credit code",
                  required=False),
             _record_date("enrolled_on", "参保日期", "Enrolled on"),
             code("status", "参保状态", "Status", ("参保缴费", "暂停缴费", "终止参保")),
             district()],
            sharing=CO, condition=SOCIAL, cycle=MONTHLY, rows=50_000, date_item="enrolled_on",
            security=IMPORTANT, defects=()),
        resource(
            "rsj.si_payment", "社会保险缴费明细", "Social insurance contributions",
            Category.social_security,
            "按月记录的社会保险缴费：费款所属期、缴费基数、个人和单位缴费金额、到账日期。",
            "Monthly contributions: period, contribution base, employee and employer amounts, "
            "date received.",
            ["社保缴费", "缴费基数", "养老保险"],
            [*insured, code("insurance_type", "险种", "Scheme", vocab.SOCIAL_INSURANCE_TYPES,
                            key=True),
             item("period", "费款所属期", "Contribution period", D, key=True,
                  description="所属月份的第一天"),
             amount("base", "缴费基数", "Contribution base"),
             amount("personal_amount", "个人缴费金额", "Employee contribution"),
             amount("employer_amount", "单位缴费金额", "Employer contribution"),
             _record_date("paid_on", "到账日期", "Received on")],
            sharing=CO, condition=SOCIAL, cycle=MONTHLY, rows=60_000, date_item="paid_on",
            security=IMPORTANT, defects=(nulls("paid_on", 0.02),)),
        resource(
            "rsj.pension", "养老金发放信息", "Pension payments", Category.social_security,
            "离退休人员基本养老金发放：养老金类别、退休日期、月发放金额、发放银行和账号。",
            "Basic pension payments to retirees: pension type, retirement date, monthly "
            "amount, bank and account.",
            ["养老金", "退休", "待遇发放"],
            [*insured, gender(), birth_date(),
             code("pension_type", "养老金类别", "Pension type", vocab.PENSION_TYPES),
             item("retired_on", "退休日期", "Retired on", D, required=True),
             amount("monthly_amount", "月发放金额", "Monthly amount", sensitivity=P),
             code("bank", "发放银行", "Bank", tuple(b for b, _ in vocab.BANKS)), bank_card(),
             _record_date("paid_on", "最近发放日期", "Last paid on")],
            sharing=CO, condition=SOCIAL, cycle=MONTHLY, rows=20_000, date_item="paid_on",
            security=IMPORTANT, defects=(bad_ids(rate=0.003),)),
        resource(
            "rsj.unemployment", "失业登记信息", "Unemployment registration",
            Category.social_security,
            "失业人员登记及失业保险金领取：登记日期、原工作单位、失业原因和领取月数。",
            "Registered unemployed people and unemployment benefit: date, former employer, "
            "reason and months of benefit.",
            ["失业", "就业", "失业保险金"],
            [*insured, mobile(required=True),
             org_name("former_employer", "原工作单位", "Former employer", required=False),
             code("reason", "失业原因", "Reason", ("合同到期", "单位裁员", "个人辞职", "单位破产",
                                                "其他")),
             item("benefit_months", "领取失业保险金月数", "Months of benefit", INT, required=True),
             amount("benefit_amount", "月失业保险金", "Monthly benefit", sensitivity=P),
             _record_date("registered_on", "登记日期", "Registered on")],
            sharing=CO, condition=SOCIAL, cycle=MONTHLY, rows=4_000, date_item="registered_on",
            fmt=CSV, defects=(bad_mobiles(rate=0.03),)),
        resource(
            "rsj.skill_certificate", "职业技能等级证书信息", "Vocational skill certificates",
            Category.e_license,
            "职业技能等级证书：证书编号、持证人、职业（工种）、等级、发证日期和评价机构。"
            "本资源未按季度更新周期及时更新。",
            "Vocational skill-level certificates: number, holder, occupation, level, date and "
            "assessing body. Overdue for its quarterly update.",
            ["职业技能", "证书", "技能人才"],
            [item("certificate_no", "证书编号", "Certificate number", key=True),
             *insured[1:], resident_id(),
             code("occupation", "职业（工种）", "Occupation", vocab.OCCUPATIONS),
             code("level", "等级", "Level", vocab.SKILL_LEVELS),
             org_name("assessor", "评价机构", "Assessing body"),
             _record_date("issued_on", "发证日期", "Issued on")],
            sharing=CO, condition=DEFAULT, cycle=QUARTERLY, rows=12_000, date_item="issued_on",
            defects=(stale(300),)),
    ]


def _civil_affairs() -> list[ResourceSpec]:
    return [
        resource(
            "mzj.marriage", "婚姻登记信息", "Marriage registration", Category.civil_affairs,
            "结婚、离婚登记及补领证件：登记类型、双方姓名和身份证号码、登记日期和登记机关。",
            "Marriage and divorce registrations: type, both parties, date and office.",
            ["婚姻登记", "结婚", "离婚", "婚姻状况"],
            [item("registration_no", "登记证字号", "Registration number", key=True),
             code("registration_type", "登记类型", "Type", ("结婚登记", "离婚登记", "补领结婚证",
                                                        "补领离婚证"), sensitivity=P),
             person_name("husband_name", "男方姓名", "Husband"),
             resident_id("husband_id", "男方身份证号码", "Husband's ID"),
             person_name("wife_name", "女方姓名", "Wife"),
             resident_id("wife_id", "女方身份证号码", "Wife's ID"),
             _record_date("registered_on", "登记日期", "Registered on"),
             item("office", "登记机关", "Registry office", required=True)],
            sharing=CO, condition=IDENTITY, cycle=DAILY, rows=15_000, date_item="registered_on",
            security=IMPORTANT, defects=(bad_ids("husband_id", 0.002),)),
        resource(
            "mzj.subsistence", "最低生活保障对象信息", "Subsistence allowance (dibao) recipients",
            Category.civil_affairs,
            "城乡最低生活保障对象：户主、保障人数、月保障金额、所在街道和发放账户。",
            "Recipients of the urban and rural minimum living guarantee (低保): head of "
            "household, people covered, monthly amount, street and account.",
            ["低保", "社会救助", "困难群众"],
            [item("case_no", "低保证号", "Case number", key=True), person_name(),
             resident_id(), code("allowance_type", "保障类别", "Type", vocab.SUBSISTENCE_TYPES),
             item("household_size", "保障人数", "People covered", INT, required=True),
             amount("monthly_amount", "月保障金额", "Monthly amount", sensitivity=P),
             district(), bank_card(),
             _record_date("approved_on", "审批日期", "Approved on"),
             code("status", "保障状态", "Status", ("正常保障", "暂停", "停保"))],
            sharing=CO, condition=SOCIAL, cycle=MONTHLY, rows=6_000, date_item="approved_on",
            security=IMPORTANT, defects=(nulls("bank_card", 0.03),)),
        resource(
            "mzj.cremation", "殡葬火化信息", "Cremation records", Category.civil_affairs,
            "殡仪馆火化登记：逝者身份信息、死亡日期、火化日期和殡仪馆，用于待遇停发和户口注销比对。",
            "Cremations: the deceased, date of death, cremation date and funeral home; used to "
            "stop benefits and close household registrations.",
            ["殡葬", "火化", "死亡"],
            [item("cremation_no", "火化证明编号", "Cremation certificate", key=True), *_PERSON,
             item("died_on", "死亡日期", "Died on", D, required=True),
             _record_date("cremated_on", "火化日期", "Cremated on"),
             code("funeral_home", "殡仪馆", "Funeral home", vocab.FUNERAL_HOMES)],
            sharing=CO, condition=SOCIAL, cycle=WEEKLY, rows=3_000, date_item="cremated_on",
            defects=(birth_mismatch(rate=0.01),)),
        resource(
            "mzj.social_org", "社会组织登记信息", "Registered social organisations",
            Category.legal_entity,
            "社会团体、民办非企业单位和基金会：名称、统一社会信用代码、类型、法定代表人、业务主管单位。",
            "Associations, private non-enterprise units and foundations: name, credit code, "
            "type, legal representative and supervising body.",
            ["社会组织", "社会团体", "民办非企业", "基金会"],
            [uscc(key=True), org_name("name", "名称", "Name"),
             code("org_type", "组织类型", "Type", ("社会团体", "民办非企业单位", "基金会")),
             person_name("legal_representative", "法定代表人", "Legal representative"),
             amount("registered_capital", "注册资金", "Registered funds", unit="万元"),
             org_name("supervisor", "业务主管单位", "Supervising body", required=False),
             _record_date("registered_on", "成立登记日期", "Registered on"),
             code("status", "登记状态", "Status", ("正常", "注销", "撤销"))],
            sharing=U, cycle=MONTHLY, rows=2_500, date_item="registered_on"),
        resource(
            "mzj.elderly_care", "养老机构信息", "Elderly care institutions", Category.civil_affairs,
            "养老机构备案信息：名称、性质、床位数、星级和地址。本资源未按季度更新周期及时更新。",
            "Registered elderly care homes: name, ownership, beds, rating and address. Overdue "
            "for its quarterly update.",
            ["养老", "养老机构", "床位"],
            [uscc(key=True), org_name("name", "机构名称", "Name"),
             code("ownership", "机构性质", "Ownership", ("公办", "民办", "公建民营")),
             item("beds", "床位数", "Beds", INT, required=True),
             code("rating", "等级评定", "Rating",
                  ("一级", "二级", "三级", "四级", "五级", "未评定")),
             address(sensitivity=NONE, required=True), district(),
             _record_date("filed_on", "备案日期", "Filed on")],
            sharing=U, cycle=QUARTERLY, rows=400, date_item="filed_on", defects=(stale(260),)),
        resource(
            "mzj.adoption", "收养登记信息", "Adoption registration", Category.civil_affairs,
            "收养关系成立和解除登记。涉及未成年人隐私，不予共享。",
            "Adoptions and their dissolution. Protects minors' privacy; not shared.",
            ["收养", "未成年人保护"],
            [item("registration_no", "收养登记证号", "Registration number", key=True),
             person_name("adopter_name", "收养人姓名", "Adopter"),
             resident_id("adopter_id", "收养人身份证号码", "Adopter's ID"),
             person_name("child_name", "被收养人姓名", "Child"),
             birth_date("child_birth_date"),
             _record_date("registered_on", "登记日期", "Registered on")],
            sharing=NS, cycle=MONTHLY, rows=300, date_item="registered_on",
            security=IMPORTANT),
    ]


def _health() -> list[ResourceSpec]:
    diagnosis = [code("diagnosis_code", "诊断编码", "Diagnosis (ICD-10)",
                      tuple(c for c, _ in vocab.DIAGNOSES), sensitivity=SP),
                 item("diagnosis", "诊断名称", "Diagnosis", required=True, sensitivity=SP)]
    return [
        resource(
            "wjw.birth", "出生医学证明信息", "Birth certificates", Category.population,
            "医疗机构签发的出生医学证明：新生儿信息、出生时间、体重、孕周、父母身份信息。",
            "Medical birth certificates: newborn, time of birth, weight, gestation, parents.",
            ["出生", "新生儿", "出生医学证明"],
            [item("certificate_no", "出生医学证明编号", "Certificate number", key=True),
             person_name("baby_name", "新生儿姓名", "Newborn"), gender(),
             item("born_at", "出生时间", "Born at", DT, required=True),
             item("weight_g", "出生体重（克）", "Birth weight (g)", INT, required=True),
             item("gestation_weeks", "出生孕周", "Gestation (weeks)", INT),
             code("hospital", "出生地点（医疗机构）", "Hospital", vocab.HOSPITALS),
             person_name("mother_name", "母亲姓名", "Mother"),
             resident_id("mother_id", "母亲身份证号码", "Mother's ID"),
             person_name("father_name", "父亲姓名", "Father", required=False),
             resident_id("father_id", "父亲身份证号码", "Father's ID", required=False),
             _record_date("issued_on", "签发日期", "Issued on")],
            sharing=CO, condition=IDENTITY, cycle=DAILY, rows=8_000, date_item="issued_on",
            security=IMPORTANT, defects=(nulls("mother_id", 0.01),)),
        resource(
            "wjw.death", "死亡医学证明信息", "Death certificates", Category.population,
            "居民死亡医学证明：死者信息、死亡日期、根本死因（ICD-10）、死亡地点和填报机构。",
            "Medical certificates of death: the deceased, date, underlying cause (ICD-10), "
            "place and certifying institution.",
            ["死亡", "死因监测"],
            [item("certificate_no", "证明编号", "Certificate number", key=True), *_PERSON,
             _record_date("died_on", "死亡日期", "Died on"),
             code("cause_code", "根本死因编码", "Underlying cause (ICD-10)",
                  tuple(c for c, _ in vocab.CAUSES_OF_DEATH), sensitivity=SP),
             item("cause", "根本死因", "Underlying cause", required=True, sensitivity=SP),
             code("place", "死亡地点", "Place of death", ("医疗卫生机构", "家中", "养老服务机构",
                                                       "其他场所")),
             item("certifier", "填报机构", "Certifying institution", required=True)],
            sharing=CO, condition=HEALTH, cycle=DAILY, rows=5_000, date_item="died_on",
            security=IMPORTANT),
        resource(
            "wjw.outpatient", "门急诊就诊信息", "Outpatient and emergency visits", Category.health,
            "全民健康信息平台汇聚的门急诊和住院就诊记录：就诊机构、科室、诊断和费用。",
            "Visits collected by the health information platform: hospital, department, "
            "diagnosis and cost.",
            ["就诊", "门诊", "诊断", "全民健康信息平台"],
            [item("visit_no", "就诊流水号", "Visit number", key=True), person_name(),
             resident_id(), gender(), item("age", "年龄", "Age", INT, required=True),
             code("hospital", "就诊机构", "Hospital", vocab.HOSPITALS),
             code("department", "就诊科室", "Department", vocab.CLINICAL_DEPARTMENTS),
             code("visit_type", "就诊类型", "Visit type", vocab.VISIT_TYPES),
             item("visited_at", "就诊时间", "Visited at", DT, required=True), *diagnosis,
             amount("total_cost", "医疗总费用", "Total cost", sensitivity=P)],
            sharing=CO, condition=HEALTH, cycle=DAILY, rows=50_000, date_item="visited_at",
            security=IMPORTANT,
            defects=(off_list("diagnosis_code", 0.005), nulls("diagnosis_code", 0.01))),
        resource(
            "wjw.vaccination", "预防接种信息", "Vaccinations", Category.health,
            "免疫规划疫苗接种记录：受种者、疫苗名称、剂次、接种日期、接种单位、疫苗批号和生产企业。",
            "Immunisation records: child, vaccine, dose, date, clinic, batch and manufacturer.",
            ["预防接种", "疫苗", "免疫规划", "儿童"],
            [item("record_no", "接种记录编号", "Record number", key=True),
             person_name("child_name", "受种者姓名", "Child"),
             resident_id("child_id", "受种者身份证号码", "Child's ID"),
             birth_date(),
             code("vaccine", "疫苗名称", "Vaccine", tuple(v for v, _, _ in vocab.VACCINES)),
             item("dose", "剂次", "Dose", INT, required=True),
             _record_date("vaccinated_on", "接种日期", "Vaccinated on"),
             code("clinic", "接种单位", "Clinic", vocab.VACCINATION_CLINICS),
             item("batch_no", "疫苗批号", "Batch", required=True),
             item("manufacturer", "生产企业", "Manufacturer", required=True)],
            sharing=CO, condition=HEALTH, cycle=DAILY, rows=30_000, date_item="vaccinated_on",
            defects=(birth_mismatch(rate=0.01),)),
        resource(
            "wjw.medical_institution", "医疗机构执业登记信息", "Licensed medical institutions",
            Category.health,
            "医疗机构执业许可：登记号、名称、类别、等级、床位数、地址和有效期。",
            "Licensed medical institutions: registration number, name, category, grade, beds, "
            "address and validity.",
            ["医疗机构", "医院", "执业许可"],
            [item("registration_no", "登记号", "Registration number", key=True),
             org_name("name", "机构名称", "Name"), uscc(),
             code("category", "机构类别", "Category", ("综合医院", "中医医院", "专科医院",
                                                    "社区卫生服务中心", "乡镇卫生院", "门诊部",
                                                    "诊所")),
             code("grade", "医院等级", "Grade", ("三级甲等", "三级乙等", "二级甲等", "二级乙等",
                                               "一级", "未定级")),
             item("beds", "核定床位", "Beds", INT, required=True),
             address(sensitivity=NONE, required=True),
             _record_date("licensed_on", "发证日期", "Licensed on"),
             item("valid_until", "有效期至", "Valid until", D, required=True)],
            sharing=U, cycle=MONTHLY, rows=1_500, date_item="licensed_on"),
        resource(
            "wjw.physician", "医师执业注册信息", "Registered physicians", Category.health,
            "医师执业注册：证书编码、医师资格、执业类别和范围、执业机构。本资源未按月更新。",
            "Physician registrations: certificate, qualification, category and scope, "
            "institution. Overdue for its monthly update.",
            ["医师", "执业注册", "医务人员"],
            [item("certificate_no", "执业证书编码", "Certificate number", key=True),
             person_name(), resident_id(), gender(),
             code("qualification", "医师级别", "Qualification", ("执业医师", "执业助理医师")),
             code("category", "执业类别", "Category", ("临床", "中医", "口腔", "公共卫生")),
             code("institution", "执业机构", "Institution", vocab.HOSPITALS),
             _record_date("registered_on", "注册日期", "Registered on")],
            sharing=CO, condition=DEFAULT, cycle=MONTHLY, rows=12_000, date_item="registered_on",
            defects=(stale(130),)),
    ]


def _tax() -> list[ResourceSpec]:
    return [
        resource(
            "swj.tax_registration", "税务登记信息", "Tax registration", Category.tax,
            "纳税人税务登记：纳税人识别号（统一社会信用代码）、名称、纳税人类型、主管税务机关和状态。",
            "Taxpayer registrations: taxpayer number (credit code), name, VAT status, tax "
            "office and status.",
            ["税务登记", "纳税人", "一般纳税人"],
            [uscc(key=True, title="纳税人识别号"), org_name("name", "纳税人名称", "Taxpayer"),
             code("taxpayer_type", "纳税人类型", "Taxpayer type", vocab.TAXPAYER_TYPES),
             person_name("legal_representative", "法定代表人", "Legal representative"),
             code("industry", "行业门类", "Industry section", vocab.INDUSTRY_LABELS),
             item("tax_office", "主管税务机关", "Tax office", required=True),
             _record_date("registered_on", "登记日期", "Registered on"),
             code("status", "纳税人状态", "Status", ("正常", "非正常", "注销"))],
            sharing=CO, condition=TAX, cycle=DAILY, rows=25_000, date_item="registered_on"),
        resource(
            "swj.vat_summary", "增值税发票开具汇总信息", "VAT invoices issued (monthly summary)",
            Category.tax,
            "按纳税人、月份和发票种类汇总的增值税发票开具份数、金额和税额，用于经济运行监测。",
            "VAT invoices issued per taxpayer, month and invoice type: count, amount and tax.",
            ["增值税", "发票", "经济运行"],
            [uscc(key=True, title="纳税人识别号"), org_name("name", "纳税人名称", "Taxpayer"),
             item("period", "所属期", "Period", D, key=True, description="所属月份的第一天"),
             code("invoice_type", "发票种类", "Invoice type", vocab.INVOICE_TYPES, key=True),
             item("invoice_count", "开具份数", "Invoices", INT, required=True),
             amount("amount", "金额", "Amount excluding tax"),
             amount("tax", "税额", "Tax"),
             _record_date("summarised_on", "汇总日期", "Summarised on")],
            sharing=CO, condition=TAX, cycle=MONTHLY, rows=40_000, date_item="summarised_on",
            security=IMPORTANT, defects=(bad_usccs(rate=0.002),)),
        resource(
            "swj.credit_rating", "纳税信用等级评定结果", "Tax credit ratings", Category.credit,
            "年度纳税信用评价结果（A、B、M、C、D 级）。",
            "Yearly tax credit ratings (A, B, M, C, D).",
            ["纳税信用", "A级纳税人", "信用评价"],
            [uscc(key=True, title="纳税人识别号"), org_name("name", "纳税人名称", "Taxpayer"),
             item("year", "评价年度", "Year", INT, key=True),
             code("grade", "信用等级", "Grade", vocab.TAX_CREDIT_GRADES),
             _record_date("rated_on", "评定日期", "Rated on")],
            sharing=U, cycle=YEARLY, rows=15_000, date_item="rated_on"),
        resource(
            "swj.arrears", "欠税公告信息", "Tax arrears announcements", Category.credit,
            "依法公告的欠税纳税人、欠缴税种和余额。本资源未按季度更新周期及时更新。",
            "Taxpayers in arrears as announced by law: taxes and balances. Overdue for its "
            "quarterly update.",
            ["欠税", "公告", "失信"],
            [uscc(key=True, title="纳税人识别号"), org_name("name", "纳税人名称", "Taxpayer"),
             person_name("legal_representative", "法定代表人", "Legal representative"),
             code("tax_type", "欠缴税种", "Tax", ("增值税", "企业所得税", "城市维护建设税",
                                               "房产税", "城镇土地使用税"), key=True),
             amount("balance", "欠税余额", "Balance"),
             _record_date("announced_on", "公告日期", "Announced on")],
            sharing=U, cycle=QUARTERLY, rows=600, date_item="announced_on", fmt=CSV,
            defects=(stale(400),)),
    ]


def _education() -> list[ResourceSpec]:
    return [
        resource(
            "jyj.school", "学校基本信息", "Schools", Category.education,
            "全市幼儿园、中小学和中职学校：学校标识码、名称、办学类型、举办者性质、地址和在校生数。",
            "Kindergartens, schools and vocational schools: school code, name, type, "
            "ownership, address and enrolment.",
            ["学校", "幼儿园", "中小学", "学位"],
            [item("school_code", "学校标识码", "School code", key=True),
             org_name("name", "学校名称", "School name"),
             uscc(),
             code("school_type", "办学类型", "Type", vocab.SCHOOL_TYPES),
             code("ownership", "举办者性质", "Ownership", ("公办", "民办")),
             district(), address(sensitivity=NONE, required=True),
             item("students", "在校生数", "Students", INT, required=True),
             _record_date("updated_on", "信息更新日期", "Updated on")],
            sharing=U, cycle=YEARLY, rows=900, date_item="updated_on", fmt=CSV),
        resource(
            "jyj.student", "中小学学籍信息", "Student registration", Category.education,
            "全国中小学生学籍信息管理系统中的在籍学生：学籍号、学校、年级、入学日期和监护人联系方式。",
            "Pupils in the national student registration system: student number, school, "
            "grade, date enrolled and guardian's mobile.",
            ["学籍", "学生", "义务教育"],
            [item("student_no", "全国学籍号", "Student number", key=True, sensitivity=P),
             person_name(), resident_id(), gender(), birth_date(),
             item("school", "学校名称", "School", required=True),
             code("grade", "年级", "Grade", vocab.GRADES),
             mobile("guardian_mobile", "监护人联系电话", required=True),
             _record_date("enrolled_on", "入学日期", "Enrolled on")],
            sharing=CO, condition=DEFAULT, cycle=MONTHLY, rows=30_000, date_item="enrolled_on",
            security=IMPORTANT,
            defects=(nulls("guardian_mobile", 0.04), bad_mobiles("guardian_mobile", 0.01))),
        resource(
            "jyj.teacher_certificate", "教师资格证书信息", "Teacher qualification certificates",
            Category.e_license,
            "教师资格证书：证书号码、持证人、资格种类、任教学科和认定日期。",
            "Teacher qualification certificates: number, holder, level, subject and date.",
            ["教师资格", "教师", "电子证照"],
            [item("certificate_no", "证书号码", "Certificate number", key=True), person_name(),
             resident_id(), gender(),
             code("level", "资格种类", "Level", ("幼儿园", "小学", "初级中学", "高级中学",
                                               "中等职业学校")),
             code("subject", "任教学科", "Subject", ("语文", "数学", "英语", "物理", "化学", "生物",
                                                  "历史", "地理", "政治", "音乐", "体育", "美术")),
             _record_date("certified_on", "认定日期", "Certified on")],
            sharing=CO, condition=DEFAULT, cycle=QUARTERLY, rows=10_000,
            date_item="certified_on"),
        resource(
            "jyj.training_institution", "校外培训机构信息", "Out-of-school training providers",
            Category.education,
            "经审批的校外培训机构：名称、统一社会信用代码、类型、办学地址和审批日期。本资源未按月更新。",
            "Approved out-of-school training providers. Overdue for its monthly update.",
            ["校外培训", "培训机构", "双减"],
            [uscc(key=True), org_name("name", "机构名称", "Name"),
             code("category", "培训类别", "Category", ("学科类", "体育类", "文化艺术类",
                                                    "科技类")),
             address(sensitivity=NONE, required=True), district(),
             _record_date("approved_on", "审批日期", "Approved on")],
            sharing=U, cycle=MONTHLY, rows=800, date_item="approved_on", defects=(stale(200),)),
    ]


def _housing() -> list[ResourceSpec]:
    return [
        resource(
            "zjj.provident_fund", "住房公积金缴存信息", "Housing provident fund deposits",
            Category.housing,
            "职工住房公积金个人账户：缴存单位、缴存基数、比例、月缴存额、账户余额和状态。",
            "Employees' housing provident fund accounts: employer, base, rate, monthly "
            "deposit, balance and status.",
            ["住房公积金", "缴存", "公积金贷款"],
            [item("account_no", "个人账号", "Account number", key=True, sensitivity=P),
             person_name(), resident_id(), org_name("employer", "缴存单位", "Employer"),
             uscc("employer_uscc", "缴存单位统一社会信用代码", "Employer's credit code"),
             amount("base", "缴存基数", "Deposit base", sensitivity=P),
             item("rate", "缴存比例", "Rate", DEC, required=True, description="单位和个人各自比例"),
             amount("monthly_amount", "月缴存额", "Monthly deposit", sensitivity=P),
             amount("balance", "账户余额", "Balance", sensitivity=P),
             code("status", "账户状态", "Status", ("正常", "封存", "销户")),
             _record_date("last_paid_on", "最近缴存日期", "Last deposit on")],
            sharing=CO, condition=PROPERTY, cycle=MONTHLY, rows=30_000,
            date_item="last_paid_on", security=IMPORTANT),
        resource(
            "zjj.presale_permit", "商品房预售许可信息", "Presale permits", Category.housing,
            "商品房预售许可证：证号、项目名称、开发企业、坐落、预售面积和套数。",
            "Presale permits for new housing: number, project, developer, location, area and "
            "units.",
            ["预售许可", "商品房", "房地产开发"],
            [item("permit_no", "预售许可证号", "Permit number", key=True),
             item("project", "项目名称", "Project", required=True),
             org_name("developer", "开发企业", "Developer"), uscc(),
             address("location", "坐落", "Location", sensitivity=NONE, required=True),
             item("area_m2", "预售面积（平方米）", "Area (m²)", DEC, required=True),
             item("units", "预售套数", "Units", INT, required=True),
             _record_date("issued_on", "发证日期", "Issued on")],
            sharing=U, cycle=WEEKLY, rows=1_200, date_item="issued_on"),
        resource(
            "zjj.contractor_qualification", "建筑业企业资质信息",
            "Construction contractor licences", Category.housing,
            "建筑业企业资质证书：证书编号、企业、资质类别和等级、发证和有效期。本资源未按月更新。",
            "Construction enterprise qualification certificates. Overdue for its monthly "
            "update.",
            ["建筑业", "资质", "施工总承包"],
            [item("certificate_no", "证书编号", "Certificate number", key=True),
             org_name("enterprise", "企业名称", "Enterprise"), uscc(),
             code("qualification", "资质类别及等级", "Qualification",
                  ("建筑工程施工总承包一级", "建筑工程施工总承包二级", "建筑工程施工总承包三级",
                   "市政公用工程施工总承包二级", "建筑装修装饰工程专业承包二级",
                   "施工劳务不分等级")),
             _record_date("issued_on", "发证日期", "Issued on"),
             item("valid_until", "有效期至", "Valid until", D, required=True)],
            sharing=U, cycle=MONTHLY, rows=3_000, date_item="issued_on", defects=(stale(95),)),
        resource(
            "zjj.contract_filing", "商品房网签备案信息", "New home sales contracts",
            Category.housing,
            "商品房买卖合同网签备案：合同编号、项目、买受人、面积、成交价和备案日期。",
            "Registered sales contracts for new homes: number, project, buyer, area, price "
            "and date.",
            ["网签备案", "商品房买卖", "房价"],
            [item("contract_no", "合同编号", "Contract number", key=True),
             item("project", "项目名称", "Project", required=True),
             person_name("buyer_name", "买受人", "Buyer"),
             resident_id("buyer_id", "买受人身份证号码", "Buyer's ID"),
             item("area_m2", "建筑面积（平方米）", "Floor area (m²)", DEC, required=True),
             amount("unit_price", "成交单价", "Price per m²", unit="元/平方米"),
             amount("total_price", "成交总价", "Total price", sensitivity=P),
             _record_date("filed_on", "备案日期", "Filed on")],
            sharing=CO, condition=PROPERTY, cycle=DAILY, rows=15_000, date_item="filed_on",
            defects=(bad_ids("buyer_id", 0.003),)),
    ]


def _natural_resources() -> list[ResourceSpec]:
    return [
        resource(
            "zrzyj.property", "不动产登记信息", "Real estate registration",
            Category.natural_resources,
            "不动产权登记：不动产权证号、不动产单元号、权利人、坐落、面积、用途和登记日期。",
            "Real estate titles: certificate, unit number, holder, location, area, use and "
            "date.",
            ["不动产", "产权", "房产证"],
            [item("certificate_no", "不动产权证号", "Title certificate", key=True),
             item("unit_no", "不动产单元号", "Property unit number", required=True),
             person_name("owner_name", "权利人", "Holder"),
             resident_id("owner_id", "权利人证件号码", "Holder's ID"),
             code("co_ownership", "共有情况", "Ownership", ("单独所有", "共同共有", "按份共有")),
             address("location", "坐落", "Location", required=True),
             item("area_m2", "建筑面积（平方米）", "Floor area (m²)", DEC, required=True),
             code("use", "用途", "Use", vocab.PROPERTY_USES),
             _record_date("registered_on", "登记日期", "Registered on")],
            sharing=CO, condition=PROPERTY, cycle=DAILY, rows=40_000,
            date_item="registered_on", security=IMPORTANT, defects=(nulls("owner_id", 0.01),)),
        resource(
            "zrzyj.land_parcel", "宗地基础信息", "Land parcels", Category.natural_resources,
            "地籍调查宗地：宗地代码、坐落、用途、面积、权利类型、使用权人、终止日期和中心点坐标。",
            "Cadastral parcels: parcel code, location, use, area, right, holder, term and "
            "centroid.",
            ["宗地", "地籍", "土地使用权"],
            [item("parcel_code", "宗地代码", "Parcel code", key=True,
                  description="19 位：县级行政区划 6 + 地籍区 3 + 地籍子区 3 + 特征码 2 "
                              "+ 顺序号 5"),
             district(), code("land_use", "土地用途", "Land use", vocab.LAND_USES),
             item("area_m2", "宗地面积（平方米）", "Area (m²)", DEC, required=True),
             code("right_type", "权利类型", "Right", ("国有建设用地使用权（出让）",
                                                     "国有建设用地使用权（划拨）",
                                                     "集体建设用地使用权", "宅基地使用权")),
             org_name("holder", "使用权人", "Holder"),
             item("term_until", "终止日期", "Term until", D),
             item("longitude", "中心点经度", "Centroid longitude", DEC, required=True),
             item("latitude", "中心点纬度", "Centroid latitude", DEC, required=True),
             _record_date("surveyed_on", "调查日期", "Surveyed on")],
            sharing=CO, condition=PROPERTY, cycle=MONTHLY, rows=10_000,
            date_item="surveyed_on"),
        resource(
            "zrzyj.survey", "基础测绘成果目录", "Basic surveying and mapping products",
            Category.natural_resources,
            "1:500、1:2000 基础测绘成果和高精度航摄影像目录，涉密，属于核心数据，不予共享。",
            "Large-scale basic mapping and high-resolution aerial imagery. Classified core "
            "data; not shared.",
            ["基础测绘", "地形图", "航摄影像", "涉密"],
            [item("sheet_no", "图幅号", "Sheet number", key=True),
             code("scale", "比例尺", "Scale", ("1:500", "1:1000", "1:2000", "1:10000")),
             code("product", "成果类型", "Product", ("数字线划图", "数字正射影像", "数字高程模型",
                                                    "实景三维模型")),
             code("secrecy", "密级", "Classification", ("秘密", "机密")),
             item("lon_min", "西边界经度", "West longitude", DEC, required=True),
             item("lat_min", "南边界纬度", "South latitude", DEC, required=True),
             _record_date("produced_on", "生产日期", "Produced on")],
            sharing=NS, cycle=YEARLY, rows=600, date_item="produced_on", security=CORE),
        resource(
            "zrzyj.planning_permit", "建设工程规划许可信息", "Building planning permits",
            Category.natural_resources,
            "建设工程规划许可证：证号、项目、建设单位、坐落、建设规模和发证日期。",
            "Building planning permits: number, project, developer, location, size, date.",
            ["规划许可", "建设工程", "国土空间规划"],
            [item("permit_no", "许可证号", "Permit number", key=True),
             item("project", "项目名称", "Project", required=True),
             org_name("builder", "建设单位", "Developer"), uscc(),
             address("location", "建设位置", "Location", sensitivity=NONE, required=True),
             item("floor_area_m2", "建设规模（平方米）", "Floor area (m²)", DEC, required=True),
             _record_date("issued_on", "发证日期", "Issued on")],
            sharing=U, cycle=WEEKLY, rows=2_000, date_item="issued_on"),
    ]


def _transport() -> list[ResourceSpec]:
    return [
        resource(
            "jtj.road_transport_licence", "道路运输经营许可信息",
            "Road transport operating licences", Category.transport,
            "道路运输经营许可证：许可证号、经营者、经营范围、发证和有效期。本资源未按周更新。",
            "Road transport operating licences. Overdue for its weekly update.",
            ["道路运输", "经营许可", "货运", "客运"],
            [item("licence_no", "许可证号", "Licence number", key=True),
             org_name("operator", "经营者名称", "Operator"), uscc(),
             code("scope", "经营范围", "Scope", vocab.TRANSPORT_SCOPES),
             _record_date("issued_on", "发证日期", "Issued on"),
             item("valid_until", "有效期至", "Valid until", D, required=True)],
            sharing=U, cycle=WEEKLY, rows=5_000, date_item="issued_on", defects=(stale(60),)),
        resource(
            "jtj.ride_hailing_driver", "网络预约出租汽车驾驶员证信息",
            "Ride-hailing driver permits", Category.transport,
            "网约车驾驶员证：证号、驾驶员、联系方式、服务平台、发证和有效期。",
            "Ride-hailing driver permits: number, driver, mobile, platform, issue and expiry.",
            ["网约车", "驾驶员", "出租汽车"],
            [resident_id(key=True, title="驾驶员证号"), person_name(), gender(),
             mobile(required=True),
             code("platform", "服务平台", "Platform", vocab.RIDE_HAILING_PLATFORMS),
             _record_date("issued_on", "发证日期", "Issued on"),
             item("valid_until", "有效期至", "Valid until", D, required=True)],
            sharing=CO, condition=DEFAULT, cycle=WEEKLY, rows=12_000, date_item="issued_on",
            fmt=CSV, defects=(bad_ids(rate=0.004), bad_mobiles(rate=0.01))),
        resource(
            "jtj.enforcement", "交通运输行政处罚信息", "Transport penalties", Category.credit,
            "交通运输综合执法行政处罚决定（双公示）。",
            "Transport enforcement penalty decisions (double publicity).",
            ["交通执法", "行政处罚", "双公示"],
            [item("decision_no", "决定书文号", "Decision number", key=True),
             org_name("party", "当事人名称", "Party"), uscc(required=False),
             code("violation", "违法行为", "Violation", ("未取得道路运输经营许可", "超限运输",
                                                      "非法营运", "未按规定维护车辆",
                                                      "网约车未取得许可")),
             amount("fine", "罚款金额", "Fine"),
             _record_date("decided_on", "处罚决定日期", "Decided on")],
            sharing=U, cycle=WEEKLY, rows=3_000, date_item="decided_on"),
    ]


def _medical_insurance() -> list[ResourceSpec]:
    return [
        resource(
            "ybj.enrolment", "基本医疗保险参保信息", "Basic medical insurance enrolment",
            Category.social_security,
            "职工医保和城乡居民医保参保信息：险种、人员类别、参保单位、参保日期和状态。",
            "Enrolment in employee and resident basic medical insurance.",
            ["医保", "参保", "城乡居民医保", "职工医保"],
            [resident_id(key=True), person_name(), gender(), birth_date(),
             code("insurance_type", "险种", "Scheme", vocab.MEDICAL_INSURANCE_TYPES),
             code("category", "人员类别", "Category", vocab.MEDICAL_INSURED_CATEGORIES),
             org_name("employer", "参保单位", "Employer", required=False),
             _record_date("enrolled_on", "参保日期", "Enrolled on"),
             code("status", "参保状态", "Status", ("正常参保", "暂停参保", "终止参保")),
             district()],
            sharing=CO, condition=SOCIAL, cycle=MONTHLY, rows=60_000, date_item="enrolled_on",
            security=IMPORTANT, defects=()),
        resource(
            "ybj.settlement", "医疗保障基金结算信息", "Medical insurance settlements",
            Category.social_security,
            "定点医药机构医保结算：结算流水、就诊类型、诊断、医疗总费用、统筹基金和个人支付。",
            "Settlements at designated providers: visit type, diagnosis, total cost, fund "
            "and out-of-pocket payments.",
            ["医保结算", "报销", "统筹基金"],
            [item("settlement_no", "结算流水号", "Settlement number", key=True), person_name(),
             resident_id(), code("institution", "定点医药机构", "Provider", vocab.HOSPITALS),
             code("visit_type", "就诊类型", "Visit type", vocab.VISIT_TYPES),
             code("diagnosis_code", "诊断编码", "Diagnosis (ICD-10)",
                  tuple(c for c, _ in vocab.DIAGNOSES), sensitivity=SP),
             amount("total_cost", "医疗总费用", "Total cost", sensitivity=P),
             amount("fund_paid", "统筹基金支付", "Paid by the fund", sensitivity=P),
             amount("personal_paid", "个人自付", "Paid by the patient", sensitivity=P),
             item("settled_at", "结算时间", "Settled at", DT, required=True)],
            sharing=CO, condition=HEALTH, cycle=DAILY, rows=50_000, date_item="settled_at",
            security=IMPORTANT, defects=(nulls("diagnosis_code", 0.02),)),
        resource(
            "ybj.designated_institution", "定点医药机构信息", "Designated medical providers",
            Category.health,
            "医保定点医疗机构和零售药店：机构编码、名称、类型、等级、地址和协议签订日期。"
            "本资源未按月更新。",
            "Providers and pharmacies contracted by medical insurance. Overdue for its "
            "monthly update.",
            ["定点医疗机构", "定点药店", "医保协议"],
            [item("institution_code", "定点机构编码", "Provider code", key=True),
             org_name("name", "机构名称", "Name"), uscc(),
             code("category", "机构类型", "Type", ("定点医疗机构", "定点零售药店")),
             address(sensitivity=NONE, required=True), district(),
             _record_date("contracted_on", "协议签订日期", "Contracted on")],
            sharing=U, cycle=MONTHLY, rows=2_500, date_item="contracted_on",
            defects=(stale(75),)),
    ]


def _data_bureau() -> list[ResourceSpec]:
    return [
        resource(
            "sjj.hotline", "12345政务服务便民热线工单", "12345 citizen hotline tickets",
            Category.departmental,
            "12345 热线受理的诉求工单：受理渠道、诉求类别、诉求内容、承办单位、办理状态和满意度。",
            "Tickets of the 12345 citizen hotline: channel, category, request, handling "
            "department, status and satisfaction.",
            ["12345", "热线", "诉求", "接诉即办"],
            [item("ticket_no", "工单编号", "Ticket number", key=True),
             item("accepted_at", "受理时间", "Accepted at", DT, required=True),
             code("channel", "受理渠道", "Channel", vocab.HOTLINE_CHANNELS),
             code("category", "诉求类别", "Category", vocab.HOTLINE_CATEGORIES),
             item("content", "诉求内容", "Request", required=True),
             mobile("caller_mobile", "来电号码", required=True), district(),
             item("handler", "承办单位", "Handled by", required=True),
             code("status", "办理状态", "Status", ("已办结", "办理中", "已退回")),
             item("closed_at", "办结时间", "Closed at", DT),
             code("satisfaction", "满意度", "Satisfaction", ("满意", "基本满意", "不满意"),
                  required=False)],
            sharing=CO, condition=DEFAULT, cycle=DAILY, rows=20_000, date_item="accepted_at",
            fmt=JSONL, defects=(bad_mobiles("caller_mobile", 0.02),)),
        resource(
            "sjj.service_case", "政务服务办件信息", "Government service cases",
            Category.departmental,
            "一体化政务服务平台办件：事项名称、申请人、受理和办结时间、办理结果和办理渠道。",
            "Cases of the integrated government service platform: service, applicant, "
            "accepted and completed, result and channel.",
            ["政务服务", "办件", "一网通办"],
            [item("case_no", "办件编号", "Case number", key=True),
             code("service", "事项名称", "Service", vocab.SERVICE_ITEMS),
             person_name("applicant_name", "申请人姓名", "Applicant"),
             resident_id("applicant_id", "申请人身份证号码", "Applicant's ID"),
             item("accepted_at", "受理时间", "Accepted at", DT, required=True),
             item("completed_at", "办结时间", "Completed at", DT),
             code("result", "办理结果", "Result", ("准予许可", "不予许可", "办理中", "撤回")),
             code("channel", "办理渠道", "Channel", ("窗口", "网上", "自助终端", "移动端")),
             item("promised_days", "承诺时限（工作日）", "Promised days", INT, required=True),
             item("on_time", "是否按时办结", "On time", BOOL)],
            sharing=CO, condition=DEFAULT, cycle=DAILY, rows=25_000, date_item="accepted_at",
            defects=(nulls("applicant_name", 0.005),)),
    ]


def default_resources() -> tuple[ResourceSpec, ...]:
    return tuple(spec for group in (
        _public_security, _market, _human_resources, _civil_affairs, _health, _tax,
        _education, _housing, _natural_resources, _transport, _medical_insurance,
        _data_bureau) for spec in group())


def default_world(rows_scale: float = 1.0) -> WorldSpec:
    resources = default_resources()
    enterprise = next(s for s in resources if s.key == "scjg.enterprise")
    population = next(s for s in resources if s.key == "ga.population")
    return WorldSpec(departments=DEPARTMENTS, resources=resources,
                     population_size=population.rows, enterprise_size=enterprise.rows,
                     rows_scale=rows_scale)
