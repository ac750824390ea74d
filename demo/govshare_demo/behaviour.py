"""How the demo's departments behave in the sharing history (``govshare_demo.history``).

Data only: the replay draws every decision from these tables with a seeded generator, so the
dashboards tell the same story on every build. The story: market regulation (SCJG) answers
within a day; health (WJW) is slow and often overdue, so its applications get escalated to
the data bureau; tax (SWJ) rejects a lot, mostly for want of a legal basis; public security
(GA) returns applications for revision and attaches conditions; natural resources (ZRZYJ)
runs into ownership disputes. Everyone else is middling (``DEFAULT``).
"""

from __future__ import annotations

from dataclasses import dataclass

from access.models import Deficiency, RejectionReason

R = RejectionReason


@dataclass(frozen=True)
class Behaviour:
    """A provider department's approvers."""

    # Working days from a submission to the approvers' answer (uniform, both ends included).
    # Replies are due within 10 working days (GOVSHARE_ACCESS_REPLY_WORKING_DAYS), so an upper
    # end above 10 makes some applications overdue.
    reply_days: tuple[int, int]
    p_return: float  # the first answer returns the application with deficiencies
    p_reject: float  # the first answer rejects it
    p_conditions: float  # an approval comes with conditions the requester must accept
    # A resubmission is returned once more; such a second return usually breaks the one-time
    # notice rule (一次性告知): it repeats a code or raises one it could have raised at first.
    p_second_return: float
    reasons: tuple[RejectionReason, ...]  # the reasons it gives, most frequent first
    p_answer_notice: float  # its publishers answer a rectification notice
    p_useful: float  # requesters rate its deliveries useful
    # Of the notices it answers, the share answered with a real fix (a corrected data
    # version); the rest are answered without one, and the verifying run reopens them.
    p_fix_notice: float = 0.5


DEFAULT = Behaviour(reply_days=(1, 7), p_return=0.12, p_reject=0.06, p_conditions=0.3,
                    p_second_return=0.15, reasons=(R.insufficient_legal_basis, R.other),
                    p_answer_notice=0.6, p_useful=0.8)

BEHAVIOURS: dict[str, Behaviour] = {
    # Fast: answers the same or the next working day, hardly ever returns or rejects.
    "SCJG": Behaviour(reply_days=(0, 1), p_return=0.05, p_reject=0.02, p_conditions=0.05,
                      p_second_return=0.0, reasons=(R.standards_mismatch,),
                      p_answer_notice=0.9, p_useful=0.9, p_fix_notice=0.8),
    # Careful: returns for revision, approves with a data-use commitment.
    "GA": Behaviour(reply_days=(2, 8), p_return=0.3, p_reject=0.1, p_conditions=0.7,
                    p_second_return=0.3, reasons=(R.security_risk, R.insufficient_legal_basis),
                    p_answer_notice=0.7, p_useful=0.85, p_fix_notice=0.7),
    # Slow: often past the 10-working-day deadline; requesters escalate to the bureau.
    "WJW": Behaviour(reply_days=(6, 18), p_return=0.15, p_reject=0.08, p_conditions=0.6,
                     p_second_return=0.25, reasons=(R.security_risk, R.other),
                     p_answer_notice=0.3, p_useful=0.7, p_fix_notice=0.3),
    # Strict: rejects a lot, mostly for want of a legal basis (《税收征收管理法》 confidentiality).
    "SWJ": Behaviour(reply_days=(2, 7), p_return=0.1, p_reject=0.4, p_conditions=0.3,
                     p_second_return=0.1,
                     reasons=(R.insufficient_legal_basis, R.core_data, R.security_risk),
                     p_answer_notice=0.5, p_useful=0.75),
    # Registry data with contested ownership and local standards.
    "ZRZYJ": Behaviour(reply_days=(3, 9), p_return=0.15, p_reject=0.15, p_conditions=0.3,
                       p_second_return=0.1,
                       reasons=(R.ownership_dispute, R.standards_mismatch),
                       p_answer_notice=0.5, p_useful=0.8, p_fix_notice=0.4),
}


def behaviour(department: str) -> Behaviour:
    return BEHAVIOURS.get(department, DEFAULT)


# Requesters: share of overdue applications they escalate, of returns they resubmit (the rest
# are withdrawn or left), of conditions they accept, of packages they download and rate.
P_ESCALATE = 0.8
P_RESUBMIT = 0.85
P_ACCEPT_CONDITIONS = 0.9
P_DOWNLOAD = 0.85
P_RATE = 0.5
P_WITHDRAW = 0.02  # a submitted application withdrawn before any answer
P_REASSIGN = 0.05  # the approver hands it to a colleague first
P_PERIODIC = 0.12  # of small file resources: monthly (some weekly) packages instead of one
P_WEEKLY = 0.25  # of those periodic grants: weekly
P_CSV = 0.2

# How often each resource is asked for (default 1). Zero: nobody asks, so the dashboards'
# "never requested" list is not empty.
POPULARITY: dict[str, float] = {
    "ga.population": 6, "scjg.enterprise": 5, "scjg.business_licence": 5,
    "ga.residence_permit": 3, "mzj.marriage": 3, "zrzyj.property": 3,
    "swj.tax_registration": 3, "swj.credit_rating": 3, "rsj.si_enrolment": 3, "wjw.birth": 2,
    "wjw.death": 2, "scjg.penalty": 3, "scjg.food_licence": 2,
    "ybj.designated_institution": 2, "wjw.medical_institution": 2, "jyj.school": 2,
    "swj.vat_summary": 2, "swj.arrears": 2,
    "jtj.enforcement": 0, "zjj.contractor_qualification": 0, "jyj.training_institution": 0,
    "mzj.elderly_care": 0, "rsj.skill_certificate": 0,
}

# Above this many rows (at the built scale) requesters ask for API-query access instead of a
# file: a query view costs a scan, a file a full copy. Periodic packages only below SMALL_ROWS.
BIG_ROWS = 20_000
SMALL_ROWS = 5_000

# Bundles (一件事): a requester files parts to several providers at once; the first part's
# provider coordinates. Keys are resource spec keys.
BUNDLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("新生儿出生一件事", "SJJ", ("wjw.birth", "ga.household", "ybj.enrolment")),
    ("企业开办一件事", "SJJ", ("scjg.business_licence", "swj.tax_registration",
                         "rsj.si_enrolment")),
)

PURPOSES = (
    "办理{service}时核验申请人提交的{name}，减少群众重复提交材料",
    "开展{service}，需比对{name}以确认资格条件",
    "用于{service}的事中事后监管和风险预警",
    "支撑“一网通办”{service}事项的材料免提交",
    "用于{service}相关统计分析和政策评估（脱敏后使用）",
)
SERVICES = ("社会救助资格审核", "住房保障资格审核", "企业登记注册", "人才引进落户", "医保待遇核定",
            "学位申请审核", "税费征收管理", "养老服务补贴发放", "信用联合奖惩", "交通执法")
LEGAL_BASES = (
    "《政务数据共享条例》第十条",
    "《广东省政务数据资源共享管理办法（试行）》第十六条",
    "《深圳经济特区数据条例》第四十一条",
    "《优化营商环境条例》第三十五条",
    "《社会救助暂行办法》第十一条",
)
BETTER_LEGAL_BASIS = "《深圳经济特区数据条例》第四十一条及本部门“三定”规定职责"

DEFICIENCY_NOTES: dict[Deficiency, str] = {
    Deficiency.purpose_unclear: "请具体说明办理的事项名称和使用场景",
    Deficiency.legal_basis_insufficient: "所列依据未授权使用该数据，请补充具体条款",
    Deficiency.items_not_necessary: "部分数据项超出最小必要范围，请删减",
    Deficiency.period_too_long: "使用期限过长，请按业务周期申请",
    Deficiency.delivery_unsuitable: "数据量较大，请改用接口查询方式",
    Deficiency.other: "请补充部门负责人审核意见",
}

REJECTION_TEXTS: dict[RejectionReason, str] = {
    R.security_risk: "申请数据项涉及大量敏感个人信息，现有用途下安全风险过高",
    R.ownership_dispute: "该数据的权属尚存争议，待市数据局协调明确后再行共享",
    R.core_data: "申请内容涉及核心数据，不在共享范围内",
    R.standards_mismatch: "申请的数据口径与本部门数据标准不一致，无法按申请提供",
    R.insufficient_legal_basis: "所列法律依据不足以支撑使用该类数据，不予同意",
    R.other: "该业务已通过其他渠道获取同类数据，不宜重复共享",
}

CONDITIONS = (
    "签署《数据使用安全责任承诺书》",
    "仅限申请事由范围内使用，不得向第三方提供",
    "使用期满后三十日内销毁数据并书面反馈",
)

COORDINATION = (
    ("remind", "已电话提醒提供部门尽快答复"),
    ("convene", "市数据局召集双方召开协调会"),
    ("outcome", "协调会议定：提供部门五个工作日内答复"),
)

RATING_COMMENTS = {True: ("数据完整，满足业务需要", "字段齐全，核验效率明显提升", ""),
                   False: ("数据更新不及时", "部分记录缺失，需人工补录", "")}

REVOKE_REASON = "申请部门超范围使用数据，经核查收回授权"

# Rectification notices by the data bureau for catalogued defects: (dimension, problem).
NOTICE_TEXTS: dict[str, tuple[str, str]] = {
    "stale": ("freshness", "数据未按承诺的更新周期更新"),
    "null_required": ("completeness", "必填数据项存在空值"),
    "invalid_resident_id": ("validity", "身份证号码校验位错误"),
    "invalid_uscc": ("validity", "统一社会信用代码校验位错误"),
    "invalid_mobile": ("validity", "手机号码格式错误"),
    "duplicate_key": ("uniqueness", "存在重复记录"),
    "birth_date_mismatch": ("consistency", "出生日期与身份证号码不一致"),
    "code_not_in_list": ("validity", "代码值不在标准代码表内"),
}
P_NOTICE = 0.6  # of resources with a catalogued defect: the bureau issues a notice
# The generated expectations (``quality.rules``, by name prefix) a notice about a defect names,
# so that its verifying run fails while the defect is there. A stale resource fails no
# expectation: its notice rests on the freshness score alone.
NOTICE_RULES: dict[str, str] = {
    "null_required": "not_null:",
    "invalid_resident_id": "resident_id:",
    "invalid_uscc": "uscc:",
    "invalid_mobile": "mobile:",
    "duplicate_key": "unique:",
    "birth_date_mismatch": "id_birth_date:",
    "code_not_in_list": "code_list:",
}
