# The notes' TFTP client (001 §3.2.3), unchanged but for where its input comes
# from: host, port and file name are argv[1..3] (not input() and 192.168.1.15:69),
# and the socket has a timeout so a test can never hang. Its quirks are kept on
# purpose: an RRQ without options, recvfrom(1024), 'client_<name>' opened for
# append in the cwd, no check of block numbers, and no ACK for the last block.
from socket import *
import struct  # 负责Pyhton数据结构和C语言数据结构的转换
import sys


file_name = sys.argv[3]
# 客户端的socket
s = socket(AF_INET, SOCK_DGRAM)
s.settimeout(10)

# 定义服务器的地址和端口号
host_port = (sys.argv[1], int(sys.argv[2]))
# 把Python的数据转化成C语言的数据
# '!H%dsb5sb'代表格式: !开头, H短整型、%ds是字符串、b是int转为char、5s是长度为5的字符串
# 请求的数据包
data_package = struct.pack('!H%dsb5sb' % len(file_name), 1, file_name.encode('utf-8'), 0, 'octet'.encode('utf-8'), 0)

# 把数据包发送到服务器
s.sendto(data_package, host_port)

# 创建一个空白文件，准备接收客户端发过来的数据
f = open('client_' + file_name, 'ab')

while True:
    # 客户端接收服务器发过来的数据
    # 数据包有两种：1、下载文件的数据包  2、error信息包
    recv_data, (server_ip, server_port) = s.recvfrom(1024)
    operator_code, num = struct.unpack('!HH', recv_data[:4])  # 把前4个字节的数据接报出来
    if int(operator_code) == 5: # 判断数据包是否是error信息报
        print('服务器返回：你要下载的文件不存在！')
        break
    # 如果是文件内容数据包，需要保存文件内容
    f.write(recv_data[4:])

    # 意味着文件接收完了
    if len(recv_data) < 516:
        print('客户端下载成功')
        break

    # 客户端每收到一个数据包，还需要发送一个确认ack给服务器
    ack_package = struct.pack('!HH', 4, num)
    s.sendto(ack_package, (server_ip, server_port))

# 释放资源
f.close()
s.close()
